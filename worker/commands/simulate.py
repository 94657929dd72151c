"""`router simulate`: the what-if simulator (sim/), replaying real traces through the routing policy."""

from __future__ import annotations

import argparse

from sim.cli import add_arguments, run
from worker.budget_file import load_budgets


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "simulate", help="what-if: replay a trace through fifo, fifo-capable, cheapest, router and premium"
    )
    add_arguments(p)
    p.set_defaults(func=run, load_budgets=load_budgets)  # --budgets is checked as the worker checks it

"""`router simulate`: the what-if simulator (sim/), replaying real traces through the routing policy."""

from __future__ import annotations

import argparse

from sim.cli import add_arguments, run


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "simulate", help="what-if: replay a trace through fifo, fifo-capable, cheapest, router and premium"
    )
    add_arguments(p)
    p.set_defaults(func=run)

"""`router demo`: everything at once on embedded defaults."""

from __future__ import annotations

import argparse

from worker.commands.argtypes import port, positive_number_up_to
from worker.demo import run_demo
from worker.demo_fleet import MAX_TASKS_PER_S
from worker.logs import configure

# A year: the longest run that --seconds names (omit it to run until stopped).
MAX_SECONDS = 365 * 86400.0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "demo", help="run worker, recorder, a synthetic dispatcher and slots; show decisions live"
    )
    p.add_argument(
        "--seconds",
        type=positive_number_up_to(MAX_SECONDS),
        help="stop after this many seconds (default: until Ctrl-C or SIGTERM)",
    )
    p.add_argument(
        "--tasks-per-s",
        type=positive_number_up_to(MAX_TASKS_PER_S),
        default=6.0,
        help=f"synthetic dispatcher rate (default 6, at most {MAX_TASKS_PER_S:g})",
    )
    p.add_argument("--database-url", help="where decisions are recorded (default a local SQLite file)")
    p.add_argument("--web-port", type=port, default=8000, help="serve the dashboard on this port (0: no dashboard)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    configure("warning")  # the live view is the output; JSON logs would drown it
    return run_demo(
        seconds=args.seconds, tasks_per_s=args.tasks_per_s, database_url=args.database_url, web_port=args.web_port
    )

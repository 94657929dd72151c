"""`router demo`: everything at once on embedded defaults."""

from __future__ import annotations

import argparse

from worker.demo import run_demo
from worker.logs import configure


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "demo", help="run worker, recorder, a synthetic dispatcher and slots; show decisions live"
    )
    p.add_argument("--seconds", type=float, help="stop after this many seconds (default: until Ctrl-C)")
    p.add_argument("--tasks-per-s", type=float, default=6.0, help="synthetic dispatcher rate (default 6)")
    p.add_argument("--database-url", help="where decisions are recorded (default a local SQLite file)")
    p.add_argument("--web-port", type=int, default=8000, help="serve the dashboard on this port (0: no dashboard)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.seconds is not None and args.seconds <= 0:
        raise SystemExit("router demo: --seconds must be positive")
    configure("warning")  # the live view is the output; JSON logs would drown it
    return run_demo(
        seconds=args.seconds, tasks_per_s=args.tasks_per_s, database_url=args.database_url, web_port=args.web_port
    )

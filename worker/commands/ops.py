"""`router tail`: the decision log for ops, from the `router:decisions` stream."""

from __future__ import annotations

import argparse
import sys
from typing import Any

import orjson
from rich.console import Console
from rich.text import Text

from streams.clients import Ops
from streams.keys import Keys
from worker.commands.argtypes import non_negative_count
from worker.commands.common import add_connection_options, redis_from, settings_from

OUTCOME_STYLE = {"assigned": "green", "await_slot": "yellow", "unroutable": "red", "failed": "red"}
TIER_STYLE = {1: "cyan", 2: "blue", 3: "magenta"}


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser("tail", help="show recent decisions; --follow keeps following")
    add_connection_options(p)
    p.add_argument("--follow", "-f", action="store_true", help="keep following new decisions")
    p.add_argument(
        "--count",
        "-n",
        type=non_negative_count,
        default=20,
        help="how many recent decisions first (default 20; 0: only new ones)",
    )
    p.add_argument("--model", help="only decisions that chose this model")
    p.add_argument("--layer", help="only tasks of this layer")
    p.add_argument("--outcome", choices=sorted(OUTCOME_STYLE), help="only this outcome")
    p.add_argument("--json", action="store_true", help="one JSON record per line")
    p.set_defaults(func=run_tail)


def matches(record: dict[str, Any], args: argparse.Namespace) -> bool:
    return (
        (args.model is None or record.get("chosen_model") == args.model)
        and (args.layer is None or record.get("layer") == args.layer)
        and (args.outcome is None or record.get("outcome") == args.outcome)
    )


def format_line(record: dict[str, Any]) -> Text:
    """One readable line: outcome, task, where it went, and the reason sentence."""
    outcome = str(record.get("outcome", "?"))
    tier = record.get("chosen_tier")
    line = Text()
    if record.get("dry_run"):
        line.append("[dry] ", style="dim")
    line.append(f"{outcome:<10} ", style=OUTCOME_STYLE.get(outcome, ""))
    line.append(f"{record.get('task_id', '?')!s:<14} ", style="bold")
    line.append(f"p{record.get('priority', '?')!s:<3} ev {_num(record.get('ev'))} ")
    if record.get("chosen_model"):
        line.append(f"-> {record['chosen_model']}", style=TIER_STYLE.get(tier if isinstance(tier, int) else 0, ""))
        line.append(f" @ {record.get('chosen_slot_id')} ")
    if record.get("est_cost_usd") is not None:
        line.append(f"~${record['est_cost_usd']:.4f} ", style="dim")
    line.append(str(record.get("reason", "")), style="dim")
    return line


def _num(value: Any) -> str:
    return f"{value:.2f}" if isinstance(value, int | float) else "-"


def run_tail(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    ops = Ops(redis_from(settings), Keys(settings.prefix))
    console = Console(highlight=False, soft_wrap=True)
    last_id = "$"
    # XREVRANGE refuses COUNT 0, and -n 0 asks for nothing before following anyway
    recent = ops.recent_decisions(count=args.count) if args.count else []
    for entry_id, record in recent:
        last_id = entry_id
        _emit(record, args, console)
    if not args.follow:
        return 0
    for _, record in ops.follow_decisions(last_id=last_id):
        _emit(record, args, console)
    return 0


def _emit(record: dict[str, Any], args: argparse.Namespace, console: Console) -> None:
    if not matches(record, args):
        return
    if args.json:
        sys.stdout.buffer.write(orjson.dumps(record) + b"\n")
        sys.stdout.flush()
    else:
        console.print(format_line(record))

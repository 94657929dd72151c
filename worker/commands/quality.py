"""`router quality`: what each model achieved per layer and per requirement level, from SQL."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from rich.console import Console
from rich.table import Table
from sqlalchemy.exc import SQLAlchemyError

from dashboard.params import MAX_HOURS
from router.errors import RouterError
from store.db import make_engine
from store.quality import QualityRow, Suggestion, quality, suggestions
from worker.commands.common import add_connection_options, settings_from


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser("quality", help="success rate and $ per successful task, per model and layer")
    add_connection_options(p, database=True)
    p.add_argument("--hours", type=hours_arg, default=24, help=f"the last this many hours (default 24, 1-{MAX_HOURS})")
    p.add_argument("--json", action="store_true", help="one JSON document for scripts")
    p.set_defaults(func=run_quality)


def hours_arg(value: str) -> int:
    try:
        hours = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number of hours") from None
    if not 1 <= hours <= MAX_HOURS:
        raise argparse.ArgumentTypeError(f"hours must be from 1 to {MAX_HOURS}, got {hours}")
    return hours


def run_quality(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    since = datetime.now(tz=UTC) - timedelta(hours=args.hours)
    engine = make_engine(settings.database_url)
    try:
        by_layer = quality(engine, axis="layer", since=since)
        by_level = quality(engine, axis="level", since=since)
    except SQLAlchemyError as exc:
        raise RouterError(f"cannot read the decision store: {str(exc).splitlines()[0][:300]}") from None
    finally:
        engine.dispose()
    suggested = suggestions(by_layer, min_success=settings.min_success, min_outcomes=settings.quality_min_outcomes)
    if args.json:
        doc: dict[str, Any] = {
            "hours": args.hours,
            "by_layer": [r.to_json() | {"layer": r.group} for r in by_layer],
            "by_requirement_level": [r.to_json() | {"level": int(r.group)} for r in by_level],
            "suggested_catalogue_changes": [{"model": s.model, "layer": s.layer, "text": s.text} for s in suggested],
            "quality_gate": settings.quality_gate,
        }
        sys.stdout.buffer.write(orjson.dumps(doc, option=orjson.OPT_INDENT_2) + b"\n")
        return 0
    console = Console(highlight=False)
    console.print(_table(f"per model and layer, last {args.hours}h", "layer", by_layer))
    console.print(_table(f"per model and requirement level, last {args.hours}h", "level", by_level))
    _print_suggestions(console, suggested, gate=settings.quality_gate)
    return 0


def _table(title: str, group: str, rows: list[QualityRow]) -> Table:
    table = Table(title=title, title_justify="left")
    for name in ("model", group, "tasks", "ok", "capability", "transient", "abandoned", "unreported"):
        table.add_column(name, justify="left" if name in {"model", group} else "right")
    table.add_column("success (95%)", justify="right")
    table.add_column("$ / success", justify="right")
    for r in rows:
        table.add_row(
            r.model,
            r.group,
            str(r.tasks),
            str(r.succeeded),
            str(r.failed_capability),
            str(r.failed_transient),
            str(r.failed_abandoned),
            str(r.unreported),
            success_text(r),
            "-" if r.usd_per_success is None else f"${r.usd_per_success:.4f}",
        )
    return table


def success_text(r: QualityRow) -> str:
    if r.success_rate is None or r.success_low is None or r.success_high is None:
        return "-"
    return f"{r.success_rate:.0%} ({r.success_low:.0%}-{r.success_high:.0%})"


def _print_suggestions(console: Console, suggested: list[Suggestion], *, gate: str) -> None:
    if not suggested:
        console.print("suggested catalogue changes: none")
        return
    console.print(f"suggested catalogue changes (quality gate {gate}):")
    for s in suggested:
        console.print(f"  - {s.text}")

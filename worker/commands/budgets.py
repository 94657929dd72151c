"""`router budgets`: each budget's spend against its limit, as the router has booked it."""

from __future__ import annotations

import argparse
import time

import orjson
from rich.console import Console
from rich.table import Table

from dashboard.budgets import read_budgets, standing_to_json
from router.budgets import BudgetStanding
from router.catalog import load_catalog
from streams.keys import Keys
from worker.budget_file import load_budgets
from worker.commands.common import add_connection_options, redis_from, settings_from


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser("budgets", help="spend per budget (ROUTER_BUDGETS) against its limit")
    add_connection_options(p)
    p.add_argument("--budgets", dest="budgets_path", help="the budgets TOML (env ROUTER_BUDGETS)")
    p.add_argument("--json", action="store_true", help="one JSON document")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    settings = settings_from(args, budgets_path=args.budgets_path)
    budgets = load_budgets(settings.budgets_path, load_catalog(settings.catalog_path))
    standings = read_budgets(redis_from(settings), Keys(settings.prefix), budgets, now_ms=int(time.time() * 1000))
    if args.json:
        print(orjson.dumps({"budgets": [standing_to_json(s) for s in standings]}).decode())
        return 0
    if not budgets:
        print("No budgets: set ROUTER_BUDGETS to a budgets TOML file (see docs/policy.md#budgets).")
        return 0
    Console(width=160).print(_table(standings))
    return 0


def _table(standings: list[BudgetStanding]) -> Table:
    table = Table(title="Budgets (UTC periods)")
    for name in ("budget", "period", "mode", "covers", "spent", "limit", "used", "projected"):
        table.add_column(name, justify="right" if name in {"spent", "limit", "used", "projected"} else "left")
    for s in standings:
        b = s.budget
        covers = f"{b.account or 'every account'} / {', '.join(sorted(b.models)) if b.models else 'every model'}"
        used = f"{s.share * 100:.1f}%" + (" SPENT" if s.exhausted else "")
        table.add_row(
            b.name,
            f"{b.period.value} {s.period}",
            b.mode.value,
            covers,
            f"${s.spent_usd:,.2f}",
            f"${b.usd:,.2f}",
            used,
            f"${s.projected_usd:,.2f}",
            style="red" if s.exhausted else None,
        )
    return table

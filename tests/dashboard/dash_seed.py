"""Decision and usage rows written straight into the store's tables, for the dashboard to read."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine
from starlette.testclient import TestClient

from store.writer import insert_decisions, insert_usage

# A fixed "now" for the app under test, so windows are exact and nobody else's rows fall in them.
NOW = datetime(2031, 5, 6, 12, 0, 0, tzinfo=UTC)
# make_client(engine, now=...) -> a TestClient on the dashboard (fixture in conftest.py)
MakeClient = Callable[..., TestClient]
HOSTILE_LAYER = "<script>alert('x')</script>"


def decision_row(
    model: str | None,
    layer: str,
    *,
    ago: timedelta,
    tier: int | None = None,
    est: float | None = 0.01,
    ev: float = 0.5,
    p50: float | None = 0.5,
    outcome: str = "assigned",
    dry_run: bool = False,
    now: datetime = NOW,
) -> dict[str, Any]:
    decision_id = f"d-{uuid.uuid4().hex}"
    at = now - ago
    return {
        "decision_id": decision_id,
        "task_id": f"t-{uuid.uuid4().hex}",
        "chosen_slot_id": f"{model}-1" if model else None,
        "chosen_model": model,
        "alternatives_json": "[]",
        "reason": "seeded",
        "decided_at": at,
        "outcome": outcome,
        "reason_code": "cheapest_capable" if model else "no_free_capable_slot",
        "chosen_tier": tier,
        "account": "default" if model else None,
        "layer": layer,
        "priority": 50,
        "quest_priority": None,
        "title": None,
        "ev": ev,
        "ev_p50": p50,
        "ev_p90": None,
        "override": False,
        "min_tier": 1,
        "est_cost_usd": est,
        "dry_run": dry_run,
        "event_id": f"{int(at.timestamp() * 1000)}-0",
        "policy_version": "test",
        "position": None,
        "eta_s": None,
        "stream_id": None,
        "recorded_at": at,
    }


def usage_for(
    row: dict[str, Any], cost_usd: float, *, input_tokens: int = 1000, output_tokens: int = 100
) -> dict[str, Any]:
    return {
        "event_id": f"u-{uuid.uuid4().hex}",
        "decision_id": row["decision_id"],
        "task_id": row["task_id"],
        "slot_id": row["chosen_slot_id"] or "none",
        "model": row["chosen_model"] or "none",
        "account": "default",
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "cost_usd": cost_usd,
        "cost_source": "reported",
        "reported_at": row["decided_at"] + timedelta(minutes=5),
        "recorded_at": row["decided_at"] + timedelta(minutes=5),
        "stream_id": None,
    }


def insert(engine: Engine, decision_rows: Sequence[dict[str, Any]], usage_rows: Sequence[dict[str, Any]] = ()) -> None:
    """Through the store's writer, as the recorder writes, so the hourly rollup is kept too."""
    with engine.begin() as conn:
        insert_decisions(conn, decision_rows)
        insert_usage(conn, usage_rows)


def standard_rows(now: datetime = NOW) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The seeded picture the matrix tests check:

    - haiku/chore: 3 decisions at $0.01 estimated each, one of them reported at $0.02 -> mixed, $0.04
    - sonnet/design: 2 decisions, both reported ($0.30 and $0.50) -> actual, $0.80
    - opus/strategy: 2 premium decisions at $0.60 estimated, one for a below-median-EV task
    - haiku on a layer named like a script: 1 decision at $0.01
    - not counted in 24 h: one 3 days old (7-day window only), one await_slot, one unroutable, one dry run
    """
    h = timedelta(hours=1)

    def decision(*args: Any, **kw: Any) -> dict[str, Any]:
        return decision_row(*args, now=now, **kw)

    chore = [decision("haiku", "chore", ago=h * i, tier=1) for i in (1, 2, 3)]
    design = [decision("sonnet", "design", ago=h * i, tier=2, est=0.2) for i in (4, 5)]
    strategy = [
        decision("opus", "strategy", ago=h * 6, tier=3, est=0.6, ev=0.9, p50=0.5),
        decision("opus", "strategy", ago=h * 7, tier=3, est=0.6, ev=0.1, p50=0.5),
    ]
    hostile = [decision("haiku", HOSTILE_LAYER, ago=h * 8, tier=1)]
    outside = [
        decision("haiku", "chore", ago=h * 72, tier=1),
        decision(None, "chore", ago=h, outcome="await_slot", est=None),
        decision(None, "research", ago=h, outcome="unroutable", est=None),
        decision("opus", "chore", ago=h, tier=3, dry_run=True),
    ]
    rows = [*chore, *design, *strategy, *hostile, *outside]
    usages = [usage_for(chore[0], 0.02), usage_for(design[0], 0.3), usage_for(design[1], 0.5)]
    return rows, usages

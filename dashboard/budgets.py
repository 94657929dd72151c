"""Budgets as the router last booked them: the limits from the budgets file, the spend from the ledger
snapshot in Redis (written in the worker's atomic step, so it is the router's own figure)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import redis

from router.budgets import Budget, BudgetBook, BudgetStanding
from streams.codec import decoded_hash
from streams.keys import Keys


def read_budgets(r: redis.Redis, keys: Keys, budgets: Sequence[Budget], *, now_ms: int) -> list[BudgetStanding]:
    """Every configured budget's standing now (no spend booked: 0); an unreadable entry counts as 0."""
    if not budgets:
        return []
    book = BudgetBook(budgets)
    book.restore(decoded_hash(r.hgetall(keys.state(dry_run=False).budgets)))
    return book.standings(now_ms)


def standing_to_json(s: BudgetStanding) -> dict[str, Any]:
    b = s.budget
    return {
        "name": b.name,
        "period": b.period.value,
        "period_key": s.period,
        "mode": b.mode.value,
        "account": b.account,
        "models": sorted(b.models) if b.models is not None else None,
        "limit_usd": b.usd,
        "spent_usd": round(s.spent_usd, 6),
        "spent_share": round(s.share, 6),
        "projected_usd": round(s.projected_usd, 6),
        "exhausted": s.exhausted,
    }

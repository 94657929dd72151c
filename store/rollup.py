"""Keeping `model_routing_hourly` equal to an aggregation of the decision and usage tables.

The writer calls these in the transaction that inserts the rows, with only the rows that insert
actually added (a redelivered decision or report adds nothing). A decision and its usage report
may arrive in either order, so each side adds what it knows:

- a new decision adds itself, at the actual cost if its usage is already stored, else at its
  estimate;
- a new usage report with a cost, whose decision is already stored, moves that decision from its
  estimate to the actual cost.

Exactly one of the two sees the other, provided their lookups do not both run before either
commits. On PostgreSQL two recorders could do exactly that, so every transaction that looks up
takes one advisory lock first and holds it to its commit: the later transaction's lookup then
sees the earlier one's rows. SQLite allows one writer at a time anyway.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, fields
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Insert, select, text
from sqlalchemy.dialects import postgresql, sqlite

from router.catalog import PREMIUM_TIER
from store.db import UtcDateTime
from store.records import Row
from store.schema import HOURLY_COUNTS, HOURLY_SUMS, decisions, hourly, usage

HourKey = tuple[datetime, str, str]  # (hour, chosen_model, layer)

# Ids per lookup: well under SQLite's bound-parameter limit whatever the recorder's batch size.
LOOKUP_CHUNK = 10_000

# Per schema, so stores in separate schemas of one database do not wait on each other.
_LOCK_SQL = "SELECT pg_advisory_xact_lock(hashtext(current_schema()), hashtext('model_routing_hourly'))"


@dataclass(slots=True)
class HourSums:
    """Changes to one rollup row; counts and sums may be negative (a decision leaving estimate)."""

    decisions: int = 0
    actual_decisions: int = 0
    actual_usd: float = 0.0
    estimated_decisions: int = 0
    estimated_usd: float = 0.0
    with_estimate: int = 0
    estimate_usd_all: float = 0.0
    premium: int = 0
    premium_below_p50: int = 0


def hour_of(at: datetime) -> datetime:
    """The start of the UTC hour `at` falls in."""
    return at.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def next_hour(at: datetime) -> datetime:
    """The first hour boundary at or after `at`."""
    floor = hour_of(at)
    return floor if floor == at else floor + timedelta(hours=1)


def rolled_up(row: Row) -> bool:
    """Whether a decision counts in the matrix, and so in the rollup."""
    return row["outcome"] == "assigned" and row["chosen_model"] is not None and not row["dry_run"]


def add_decisions(conn: Connection, rows: Sequence[Row]) -> None:
    """Add decisions this transaction has just inserted."""
    counted = [row for row in rows if rolled_up(row)]
    if not counted:
        return
    lock(conn)
    reported = _reported_costs(conn, [row["decision_id"] for row in counted])
    changes: dict[HourKey, HourSums] = {}
    for row in counted:
        sums = changes.setdefault((hour_of(row["decided_at"]), row["chosen_model"], row["layer"]), HourSums())
        estimate: float | None = row["est_cost_usd"]
        cost = reported.get(row["decision_id"])
        sums.decisions += 1
        if cost is not None:
            sums.actual_decisions += 1
            sums.actual_usd += cost
        elif estimate is not None:
            sums.estimated_decisions += 1
            sums.estimated_usd += estimate
        if estimate is not None:
            sums.with_estimate += 1
            sums.estimate_usd_all += estimate
        tier: int | None = row["chosen_tier"]
        if tier is not None and tier >= PREMIUM_TIER:
            sums.premium += 1
            p50: float | None = row["ev_p50"]
            if p50 is not None and row["ev"] < p50:
                sums.premium_below_p50 += 1
    apply(conn, changes)


def add_usage(conn: Connection, rows: Sequence[Row]) -> None:
    """Add usage reports this transaction has just inserted. A report without a cost leaves its
    decision at the estimate, so only reports with one change anything."""
    costs = {row["decision_id"]: row["cost_usd"] for row in rows if row["decision_id"] and row["cost_usd"] is not None}
    if not costs:
        return
    lock(conn)
    d = decisions.c
    changes: dict[HourKey, HourSums] = {}
    for ids in _chunks(list(costs)):
        query = select(d.decision_id, d.decided_at, d.chosen_model, d.layer, d.est_cost_usd).where(
            d.decision_id.in_(ids), d.outcome == "assigned", d.chosen_model.is_not(None), d.dry_run.is_(False)
        )
        for found in conn.execute(query):
            sums = changes.setdefault((hour_of(found.decided_at), found.chosen_model, found.layer), HourSums())
            sums.actual_decisions += 1
            sums.actual_usd += costs[found.decision_id]
            if found.est_cost_usd is not None:  # it was counted at its estimate until now
                sums.estimated_decisions -= 1
                sums.estimated_usd -= found.est_cost_usd
    apply(conn, changes)


def lock(conn: Connection) -> None:
    """Serialise rollup lookups with other writers' until this transaction ends (PostgreSQL)."""
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql(_LOCK_SQL)


def apply(conn: Connection, changes: dict[HourKey, HourSums]) -> None:
    """Add the changes to the rollup rows, creating the rows that do not exist yet. In key order,
    so two writers never lock the same rows in opposite orders."""
    if not changes:
        return
    rows = [
        {"hour": hour, "chosen_model": model, "layer": layer, **_values(sums)}
        for (hour, model, layer), sums in sorted(changes.items())
    ]
    conn.execute(_upsert(conn.dialect.name), rows)


def delete_hours_before(conn: Connection, cutoff: datetime) -> int:
    """Delete the rollup's hours that end at or before `cutoff` (an hour boundary)."""
    lock(conn)  # not under a writer that is adding to one of these hours
    return int(conn.execute(hourly.delete().where(hourly.c.hour < cutoff)).rowcount or 0)


@functools.cache
def _upsert(dialect: str) -> Insert:
    """INSERT .. ON CONFLICT (hour, model, layer) DO UPDATE SET each = each + excluded.each."""
    insert = postgresql.insert(hourly) if dialect == "postgresql" else sqlite.insert(hourly)
    names = (*HOURLY_COUNTS, *HOURLY_SUMS)
    return insert.on_conflict_do_update(
        index_elements=[hourly.c.hour, hourly.c.chosen_model, hourly.c.layer],
        set_={name: hourly.c[name] + insert.excluded[name] for name in names},
    )


def _values(sums: HourSums) -> dict[str, Any]:
    return {f.name: getattr(sums, f.name) for f in fields(sums)}


def _reported_costs(conn: Connection, decision_ids: list[str]) -> dict[str, float]:
    """Reported costs already stored for these decisions."""
    u = usage.c
    found: dict[str, float] = {}
    for ids in _chunks(decision_ids):
        query = select(u.decision_id, u.cost_usd).where(u.decision_id.in_(ids), u.cost_usd.is_not(None))
        found.update((row.decision_id, row.cost_usd) for row in conn.execute(query))
    return found


def _chunks(items: list[str]) -> Iterator[list[str]]:
    for start in range(0, len(items), LOOKUP_CHUNK):
        yield items[start : start + LOOKUP_CHUNK]


def raw_hourly(conn: Connection) -> list[Any]:
    """The rollup's rows computed afresh from the decision and usage tables: what the rollup
    should hold (tests, and a check after an incident)."""
    query = text(backfill_select(conn.dialect.name)).columns(hour=UtcDateTime)
    return list(conn.execute(query))


def backfill_select(dialect: str) -> str:
    """SELECT of (hour, model, layer, sums...) over every stored decision, in the rollup's columns."""
    if dialect == "postgresql":
        hour = "date_trunc('hour', d.decided_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'"
    else:  # the text form SQLAlchemy stores SQLite timestamps in, cut to the hour
        hour = "strftime('%Y-%m-%d %H:00:00.000000', d.decided_at)"
    estimate_only = "CASE WHEN u.cost_usd IS NULL THEN d.est_cost_usd END"
    premium = f"d.chosen_tier >= {PREMIUM_TIER}"
    return f"""
        SELECT {hour} AS hour, d.chosen_model, d.layer,
            count(*) AS decisions,
            count(u.cost_usd) AS actual_decisions,
            coalesce(sum(u.cost_usd), 0.0) AS actual_usd,
            count({estimate_only}) AS estimated_decisions,
            coalesce(sum({estimate_only}), 0.0) AS estimated_usd,
            count(d.est_cost_usd) AS with_estimate,
            coalesce(sum(d.est_cost_usd), 0.0) AS estimate_usd_all,
            count(CASE WHEN {premium} THEN 1 END) AS premium,
            count(CASE WHEN {premium} AND d.ev < d.ev_p50 THEN 1 END) AS premium_below_p50
        FROM model_routing_decisions d
        LEFT JOIN model_routing_usage u ON u.decision_id = d.decision_id
        WHERE d.outcome = 'assigned' AND d.chosen_model IS NOT NULL AND NOT d.dry_run
        GROUP BY 1, 2, 3
    """

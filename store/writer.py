"""Idempotent batch writes and the retention delete.

Each batch is one transaction with one multi-row `INSERT .. ON CONFLICT DO NOTHING` per table
(split only where a dialect's bound-parameter limit demands it), so a batch written twice, after
a crash between commit and acknowledgement, leaves every row exactly once."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, Table, delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql.elements import ColumnElement

from store.records import Row
from store.schema import decisions, usage

# Bound parameters per statement: PostgreSQL allows 65,535 and SQLite (3.32+) 32,766; stay under
# both with room to spare.
MAX_PARAMS = 30_000


def insert_decisions(conn: Connection, rows: Sequence[Row]) -> None:
    _insert_ignoring_duplicates(conn, decisions, rows)


def insert_usage(conn: Connection, rows: Sequence[Row]) -> None:
    _insert_ignoring_duplicates(conn, usage, rows)


def _insert_ignoring_duplicates(conn: Connection, table: Table, rows: Sequence[Row]) -> None:
    if not rows:
        return
    per_statement = max(1, MAX_PARAMS // len(table.columns))
    for start in range(0, len(rows), per_statement):
        chunk = rows[start : start + per_statement]
        conn.execute(_insert(conn, table).values(list(chunk)).on_conflict_do_nothing())


def _insert(conn: Connection, table: Table) -> postgresql.Insert | sqlite.Insert:
    name = conn.dialect.name
    if name == "postgresql":
        return postgresql.insert(table)
    if name == "sqlite":
        return sqlite.insert(table)
    raise NotImplementedError(f"the decision store supports PostgreSQL and SQLite, not {name}")


def delete_before(engine: Engine, cutoff: datetime, *, chunk: int = 10_000) -> tuple[int, int]:
    """Delete decisions decided, and usage reported, before `cutoff`. Returns (decisions, usage)
    rows deleted. Usage is reported after its decision, so an old report's decision is old too.
    Deletes go in chunks, each its own transaction, so a month's backlog never holds one long lock
    against the recorder's inserts."""
    gone_usage = _delete_chunks(engine, usage, usage.c.event_id, usage.c.reported_at < cutoff, chunk)
    gone_decisions = _delete_chunks(engine, decisions, decisions.c.decision_id, decisions.c.decided_at < cutoff, chunk)
    return gone_decisions, gone_usage


def _delete_chunks(engine: Engine, table: Table, key: ColumnElement[Any], old: ColumnElement[bool], chunk: int) -> int:
    total = 0
    while True:
        with engine.begin() as conn:
            batch = select(key).where(old).limit(chunk).scalar_subquery()
            deleted = int(conn.execute(delete(table).where(key.in_(batch))).rowcount or 0)
        total += deleted
        if deleted < chunk:
            return total


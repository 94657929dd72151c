"""Idempotent batch writes and the retention delete.

Each batch is one transaction with one multi-row `INSERT .. ON CONFLICT DO NOTHING` per table
(PostgreSQL: `INSERT .. SELECT FROM unnest(arrays)`; SQLite: a multi-row VALUES list, split only
where SQLite's bound-parameter limit demands it), so a batch written twice, after a crash between
commit and acknowledgement, leaves every row exactly once."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, Table, delete, select
from sqlalchemy.engine import Dialect
from sqlalchemy.sql.elements import ColumnElement

from store.records import Row
from store.schema import decisions, usage

# Bound parameters per statement for SQLite (3.32+ allows 32,766); PostgreSQL needs no split.
SQLITE_MAX_PARAMS = 30_000


def insert_decisions(conn: Connection, rows: Sequence[Row]) -> None:
    _insert_ignoring_duplicates(conn, decisions, rows)


def insert_usage(conn: Connection, rows: Sequence[Row]) -> None:
    _insert_ignoring_duplicates(conn, usage, rows)


def _insert_ignoring_duplicates(conn: Connection, table: Table, rows: Sequence[Row]) -> None:
    if not rows:
        return
    plan = _plan(conn.dialect, table)
    values = [[process(row[name]) if process else row[name] for name, process in plan.columns] for row in rows]
    if conn.dialect.name == "postgresql":
        # One statement whatever the batch size: a column of values per array parameter. Its text
        # never changes, so PostgreSQL parses it once and a batch costs one round trip.
        arrays = tuple(list(column) for column in zip(*values, strict=True))
        # Binary parameters (%b): psycopg's text form escapes every array element with a regex,
        # which costs more than the insert itself.
        conn.exec_driver_sql(plan.sql, arrays)
        return
    per_statement = max(1, SQLITE_MAX_PARAMS // len(plan.columns))
    for start in range(0, len(values), per_statement):
        chunk = values[start : start + per_statement]
        conn.exec_driver_sql(_sqlite_sql(plan, len(chunk)), tuple(v for row in chunk for v in row))


@dataclass(frozen=True, slots=True)
class _Plan:
    table: str
    columns: tuple[tuple[str, Callable[[Any], Any] | None], ...]  # name, the type's bind processor
    sql: str  # PostgreSQL: the whole statement; SQLite: the part before VALUES


@functools.cache
def _plan(dialect: Dialect, table: Table) -> _Plan:
    """Statement text and value conversions, worked out once per dialect and table. Rendering the
    statement with SQLAlchemy's multi-row `values()` costs more than the database's insert at
    thousands of rows, so the recorder's hot path skips the compiler; the column types' own bind
    processors still convert each value (timestamps to UTC, booleans for SQLite)."""
    columns = tuple((c.name, c.type.bind_processor(dialect)) for c in table.columns)
    names = ", ".join(dialect.identifier_preparer.quote(c.name) for c in table.columns)
    if dialect.name == "postgresql":
        arrays = ", ".join(f"%b::{c.type.compile(dialect)}[]" for c in table.columns)
        sql = f"INSERT INTO {table.name} ({names}) SELECT * FROM unnest({arrays}) ON CONFLICT DO NOTHING"
    elif dialect.name == "sqlite":
        sql = f"INSERT INTO {table.name} ({names}) VALUES "
    else:
        raise NotImplementedError(f"the decision store supports PostgreSQL and SQLite, not {dialect.name}")
    return _Plan(table.name, columns, sql)


@functools.lru_cache(maxsize=64)
def _sqlite_sql(plan: _Plan, n_rows: int) -> str:
    row = "(" + ", ".join("?" * len(plan.columns)) + ")"
    return plan.sql + ", ".join([row] * n_rows) + " ON CONFLICT DO NOTHING"


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


"""Idempotent batch writes and the retention delete.

Each batch is one transaction with one multi-row `INSERT .. ON CONFLICT DO NOTHING .. RETURNING`
per table (PostgreSQL: `INSERT .. SELECT FROM unnest(arrays)`; SQLite: a multi-row VALUES list,
split only where SQLite's bound-parameter limit demands it), so a batch written twice, after a
crash between commit and acknowledgement, leaves every row exactly once. The rows the insert
returns, those it actually added, are the ones added to the hourly rollup, in the same
transaction, so the rollup counts each row exactly once too."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, Table, and_, delete, exists, select
from sqlalchemy.engine import Dialect
from sqlalchemy.sql.elements import ColumnElement

from store import rollup
from store.records import Row
from store.schema import decisions, usage

# Bound parameters per statement for SQLite (3.32+ allows 32,766); PostgreSQL needs no split.
SQLITE_MAX_PARAMS = 30_000


def insert_decisions(conn: Connection, rows: Sequence[Row]) -> None:
    """Insert decisions not stored yet and add them to the rollup (within the caller's transaction)."""
    rollup.add_decisions(conn, _insert_ignoring_duplicates(conn, decisions, rows))


def insert_usage(conn: Connection, rows: Sequence[Row]) -> None:
    """Insert usage reports not stored yet and add their costs to the rollup."""
    rollup.add_usage(conn, _insert_ignoring_duplicates(conn, usage, rows))


def _insert_ignoring_duplicates(conn: Connection, table: Table, rows: Sequence[Row]) -> list[Row]:
    """Insert the rows; returns those actually inserted (not already stored, nor repeated earlier
    in `rows`)."""
    if not rows:
        return []
    plan = _plan(conn.dialect, table)
    # a nullable column a row leaves out is NULL (the outcome columns of migration 0004, say)
    values = [[process(row.get(name)) if process else row.get(name) for name, process in plan.columns] for row in rows]
    if conn.dialect.name == "postgresql":
        # One statement whatever the batch size: a column of values per array parameter. Its text
        # never changes, so PostgreSQL parses it once and a batch costs one round trip.
        arrays = tuple(list(column) for column in zip(*values, strict=True))
        # Binary parameters (%b): psycopg's text form escapes every array element with a regex,
        # which costs more than the insert itself.
        inserted = set(conn.exec_driver_sql(plan.sql, arrays).scalars())
    else:
        inserted = set()
        per_statement = max(1, SQLITE_MAX_PARAMS // len(plan.columns))
        for start in range(0, len(values), per_statement):
            chunk = values[start : start + per_statement]
            params = tuple(v for row in chunk for v in row)
            inserted.update(conn.exec_driver_sql(_sqlite_sql(plan, len(chunk)), params).scalars())
    # The first row with a key is the one inserted; a repeat of it in the same batch was skipped.
    added = []
    for row in rows:
        if row[plan.key] in inserted:
            inserted.discard(row[plan.key])
            added.append(row)
    return added


@dataclass(frozen=True, slots=True)
class _Plan:
    table: str
    columns: tuple[tuple[str, Callable[[Any], Any] | None], ...]  # name, the type's bind processor
    key: str  # the primary key column, returned for each row inserted
    sql: str  # PostgreSQL: the whole statement; SQLite: the part before VALUES


@functools.cache
def _plan(dialect: Dialect, table: Table) -> _Plan:
    """Statement text and value conversions, worked out once per dialect and table. Rendering the
    statement with SQLAlchemy's multi-row `values()` costs more than the database's insert at
    thousands of rows, so the recorder's hot path skips the compiler; the column types' own bind
    processors still convert each value (timestamps to UTC, booleans for SQLite)."""
    columns = tuple((c.name, c.type.bind_processor(dialect)) for c in table.columns)
    names = ", ".join(dialect.identifier_preparer.quote(c.name) for c in table.columns)
    (key,) = (c.name for c in table.primary_key.columns)
    if dialect.name == "postgresql":
        arrays = ", ".join(f"%b::{c.type.compile(dialect)}[]" for c in table.columns)
        sql = (
            f"INSERT INTO {table.name} ({names}) SELECT * FROM unnest({arrays}) ON CONFLICT DO NOTHING RETURNING {key}"
        )
    elif dialect.name == "sqlite":
        sql = f"INSERT INTO {table.name} ({names}) VALUES "
    else:
        raise NotImplementedError(f"the decision store supports PostgreSQL and SQLite, not {dialect.name}")
    return _Plan(table.name, columns, key, sql)


@functools.lru_cache(maxsize=64)
def _sqlite_sql(plan: _Plan, n_rows: int) -> str:
    row = "(" + ", ".join("?" * len(plan.columns)) + ")"
    return plan.sql + ", ".join([row] * n_rows) + f" ON CONFLICT DO NOTHING RETURNING {plan.key}"


def delete_before(engine: Engine, cutoff: datetime, *, chunk: int = 10_000) -> tuple[int, int, int]:
    """Delete decisions decided, and usage reported, before the hour `cutoff` falls in, and the
    rollup's hours before it. Returns (decisions, usage, rollup rows) deleted.

    Whole hours, so that the rollup keeps exactly the hours whose decisions are kept. Usage is
    reported after its decision, so an old report's decision is old too; a report whose decision
    is kept (clocks apart) is kept with it, so the two never disagree about that decision's cost.
    Decisions and usage go in chunks, each its own transaction, so a month's backlog never holds
    one long lock against the recorder's inserts. The rollup goes last: a report arriving for a
    decision deleted meanwhile finds no decision and leaves the rollup alone."""
    cutoff = rollup.hour_of(cutoff)
    d, u = decisions.c, usage.c
    kept_decision = exists().where(d.decision_id == u.decision_id, d.decided_at >= cutoff)
    old_usage = and_(u.reported_at < cutoff, ~kept_decision)
    gone_usage = _delete_chunks(engine, usage, u.event_id, old_usage, chunk)
    gone_decisions = _delete_chunks(engine, decisions, d.decision_id, d.decided_at < cutoff, chunk)
    with engine.begin() as conn:
        gone_hours = rollup.delete_hours_before(conn, cutoff)
    return gone_decisions, gone_usage, gone_hours


def _delete_chunks(engine: Engine, table: Table, key: ColumnElement[Any], old: ColumnElement[bool], chunk: int) -> int:
    total = 0
    while True:
        with engine.begin() as conn:
            batch = select(key).where(old).limit(chunk).scalar_subquery()
            deleted = int(conn.execute(delete(table).where(key.in_(batch))).rowcount or 0)
        total += deleted
        if deleted < chunk:
            return total

"""Engines for the two supported databases: SQLite (the embedded default) and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import DateTime, Engine, create_engine, event
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import ArgumentError
from sqlalchemy.types import TypeDecorator

from router.errors import ConfigError
from streams.connection import mask_url


class UtcDateTime(TypeDecorator[datetime]):
    """A UTC timestamp that reads back timezone-aware on both dialects. PostgreSQL keeps it as
    `timestamptz`; SQLite has no time zones, so it stores naive UTC and the zone is restored on read."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column; pass an aware datetime")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def from_epoch_ms(ms: int | float) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def to_epoch_ms(at: datetime) -> int:
    return round(at.timestamp() * 1000)


def make_engine(url: str, **options: Any) -> Engine:
    """An engine with settings that suit a recorder: SQLite in WAL mode with a busy timeout (the
    recorder writes while the dashboard and `explain` read), PostgreSQL with pre-ping so a
    connection broken by a database restart is replaced instead of failing a batch.

    A URL SQLAlchemy cannot use (unparseable, an unknown dialect, a driver not installed) raises
    ConfigError naming the URL with its password masked; nothing connects yet."""
    if url.startswith("sqlite"):
        engine = _create(url, options)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    options.setdefault("pool_pre_ping", True)
    return _create(url, options)


def _create(url: str, options: dict[str, Any]) -> Engine:
    try:
        return create_engine(url, **options)
    except ArgumentError as exc:  # unparseable, or no such dialect (NoSuchModuleError)
        raise ConfigError(f"database URL {mask_url(url)!r} is not usable: {exc}") from None
    except ImportError as exc:
        raise ConfigError(f"database URL {mask_url(url)!r} needs a driver that is not installed: {exc}") from None
    except ValueError as exc:  # a port that is not a number
        raise ConfigError(f"database URL {mask_url(url)!r} is not valid: {exc}") from None


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()

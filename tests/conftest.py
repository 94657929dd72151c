"""Shared fixtures: a real Redis (the machine's, or an embedded one), a real PostgreSQL, and a
fresh key prefix per test so tests never see each other's streams."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
import redis

from router.catalog import Catalog, load_catalog

REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
POSTGRES_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def _reachable(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=1).ping())
    except redis.RedisError:
        return False


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """The machine's Redis; outside CI, an embedded real redis-server when none is running."""
    if _reachable(REDIS_URL):
        yield REDIS_URL
        return
    if IN_CI:
        pytest.fail(f"Redis is not reachable at {REDIS_URL}; .ci/run should have started it")
    from worker.embedded import EmbeddedRedis

    server = EmbeddedRedis()
    try:
        yield server.url
    finally:
        server.close()


@pytest.fixture
def prefix() -> str:
    return f"test:{uuid.uuid4().hex[:12]}:"


@pytest.fixture
def r(redis_url: str, prefix: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url, socket_timeout=10)
    yield client
    keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()


@pytest.fixture(scope="session")
def catalog() -> Catalog:
    return load_catalog()


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """The machine's PostgreSQL. Outside CI a missing server skips these tests with the reason;
    in CI it is a failure, since .ci/run starts it."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.exc import OperationalError

    engine = create_engine(POSTGRES_URL)
    try:
        with engine.connect() as conn:
            conn.execute(text("select 1"))
    except OperationalError as exc:
        if IN_CI:
            pytest.fail(f"PostgreSQL is not reachable at {POSTGRES_URL}: {exc}")
        pytest.skip(f"PostgreSQL is not reachable at {POSTGRES_URL}")
    finally:
        engine.dispose()
    return POSTGRES_URL

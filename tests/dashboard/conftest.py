"""Databases and clients for the dashboard tests: a SQLite file per test, and PostgreSQL in a schema
of its own per test (the shared database's tables belong to other tests too)."""

from __future__ import annotations

import sys
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
import redis
from sqlalchemy import Engine, create_engine, text
from starlette.testclient import TestClient

from dashboard.app import create_app
from router.catalog import load_catalog
from store.db import make_engine
from store.schema import metadata

# The seeding helpers sit beside the tests; with --import-mode=importlib this directory is not on
# sys.path by itself. The module name is unique to this directory, so nothing else is shadowed.
sys.path.insert(0, str(Path(__file__).parent))
from dash_seed import NOW, MakeClient


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    if request.param == "sqlite":
        eng = make_engine(f"sqlite:///{tmp_path / 'decisions.sqlite3'}")
        metadata.create_all(eng)
        yield eng
        eng.dispose()
        return
    url: str = request.getfixturevalue("postgres_url")
    schema = f"dash_{uuid.uuid4().hex[:10]}"
    admin = create_engine(url)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    eng = make_engine(url, connect_args={"options": f"-c search_path={schema}"})
    metadata.create_all(eng)
    try:
        yield eng
    finally:
        eng.dispose()
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture
def sqlite_engine(tmp_path: Path) -> Iterator[Engine]:
    """A SQLite decision store alone, for tests about something other than the SQL dialect."""
    engine = make_engine(f"sqlite:///{tmp_path / 'd.sqlite3'}")
    metadata.create_all(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def make_client(r: redis.Redis, prefix: str) -> MakeClient:
    """The dashboard on a given database and this test's Redis prefix, its clock fixed at `now`."""

    def make(engine: Engine, *, now: datetime = NOW) -> TestClient:
        app = create_app(engine=engine, r=r, catalog=load_catalog(), prefix=prefix, clock=now.timestamp)
        return TestClient(app)

    return make

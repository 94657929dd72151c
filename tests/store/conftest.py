"""Store fixtures: each test gets its own database (a SQLite file in tmp_path, or a PostgreSQL
schema of its own) migrated to head, and recorder settings on the test's key prefix."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis
from sqlalchemy import Engine, create_engine, func, select, text
from support.processes import wait_for

from router.catalog import Catalog
from store.db import make_engine
from store.migrate import upgrade
from store.schema import decisions
from streams.keys import Keys
from worker.recorder import Recorder
from worker.routing import RoutingWorker
from worker.settings import Settings
from worker.signals import StopFlag

DIALECTS = ["sqlite", "postgresql"]


@pytest.fixture(params=DIALECTS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'store.sqlite3'}"
        return
    base = request.getfixturevalue("postgres_url")
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(base)
    with admin.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    try:
        # search_path in the URL, so child processes given DATABASE_URL land in the same schema
        yield f"{base}?options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    eng = make_engine(database_url)
    upgrade(eng)
    yield eng
    eng.dispose()


@pytest.fixture
def settings(redis_url: str, prefix: str, database_url: str) -> Settings:
    return Settings(
        redis_url=redis_url,
        database_url=database_url,
        prefix=prefix,
        block_ms=100,
        consumer=f"c-{uuid.uuid4().hex[:6]}",
        recorder_batch=100,
        lease_ttl_ms=2000,
    )


@pytest.fixture
def make_recorder(
    settings: Settings, r: redis.Redis, engine: Engine, catalog: Catalog
) -> Iterator[Callable[..., Recorder]]:
    made: list[Recorder] = []

    def make(**options: Any) -> Recorder:
        options.setdefault("engine", engine)
        options.setdefault("backoff_cap_s", 0.2)
        rec = Recorder(options.pop("settings", settings), r, catalog=catalog, **options)
        made.append(rec)
        return rec

    yield make
    for rec in made:
        rec.stop.stop()


@pytest.fixture
def running_worker(settings: Settings, catalog: Catalog, redis_url: str) -> Iterator[Callable[[], RoutingWorker]]:
    """A RoutingWorker in a thread; stopped (and its thread joined) at the end of the test."""
    started: list[tuple[RoutingWorker, threading.Thread]] = []

    def start() -> RoutingWorker:
        client = redis.Redis.from_url(redis_url, socket_timeout=10)
        worker = RoutingWorker(settings, client, catalog=catalog, stop=StopFlag())
        thread = threading.Thread(target=worker.run, name="routing-worker", daemon=True)
        thread.start()
        started.append((worker, thread))
        return worker

    yield start
    for worker, thread in started:
        worker.stop.stop()
        thread.join(timeout=10)


class Kit:
    """What the store tests keep doing: count rows, run recorder turns until a condition holds,
    publish events in one batch, read a stream."""

    def __init__(self, r: redis.Redis, keys: Keys, engine: Engine) -> None:
        self.r = r
        self.keys = keys
        self.engine = engine

    def count(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(decisions)).scalar_one())

    def ids(self) -> list[str]:
        with self.engine.connect() as conn:
            return list(conn.execute(select(decisions.c.decision_id)).scalars())

    def drain_until(self, rec: Recorder, condition: Callable[[], Any], *, what: str, timeout_s: float = 20.0) -> Any:
        def turn() -> Any:
            rec.run_once(block_ms=50)
            return condition()

        return wait_for(turn, timeout_s=timeout_s, what=what)

    def publish(self, docs: list[dict[str, Any]]) -> None:
        """One MULTI, so the worker reads them as one batch."""
        pipe = self.r.pipeline(transaction=True)
        for doc in docs:
            pipe.xadd(self.keys.events, {"data": orjson.dumps(doc)})
        pipe.execute()

    def records(self, key: str) -> list[dict[str, Any]]:
        return [orjson.loads(fields[b"data"]) for _, fields in self.r.xrange(key)]


@pytest.fixture
def kit(r: redis.Redis, prefix: str, engine: Engine) -> Kit:
    return Kit(r, Keys(prefix), engine)


SCENARIO: list[dict[str, Any]] = [
    {"type": "slot.free", "slot_id": "o1", "model": "opus", "account": "acct-a"},
    {"type": "slot.free", "slot_id": "h1", "model": "haiku"},
    # EV above everything: override, takes opus
    {
        "type": "task.pending",
        "task_id": "big",
        "priority": 95,
        "requires": {"reasoning": 8},
        "layer": "strategy",
        "ev": 0.99,
        "quest_priority": 96,
        "title": "design the thing",
        "est_input_tokens": 2000,
        "est_output_tokens": 500,
    },
    {"type": "task.pending", "task_id": "small", "priority": 20, "requires": {}, "layer": "chore", "ev": 0.1},
    # nothing free left that can do it: waits
    {"type": "task.pending", "task_id": "waits", "priority": 50, "requires": {"coding": 8}, "layer": "build"},
    # no model has writing 10: unroutable
    {"type": "task.pending", "task_id": "never", "priority": 40, "requires": {"writing": 10}, "layer": "build"},
]


@pytest.fixture
def scenario() -> list[dict[str, Any]]:
    """Two slots and four tasks: one to opus, one to haiku, one that waits, one unroutable."""
    return [dict(doc) for doc in SCENARIO]


def synthetic_record(i: int, *, decided_at_ms: int = 1_700_000_000_000, tag: str = "s") -> dict[str, Any]:
    """A decision record shaped like the worker's, for volume and fault tests of the recorder."""
    assigned = i % 3 != 0
    return {
        "decision_id": f"{tag}-{i}",
        "task_id": f"task-{i}",
        "outcome": "assigned" if assigned else "await_slot",
        "reason_code": "cheapest_capable" if assigned else "no_free_capable_slot",
        "reason": "synthetic decision for a recorder test",
        "chosen_slot_id": f"slot-{i % 7}" if assigned else None,
        "chosen_model": "haiku" if assigned else None,
        "chosen_tier": 1 if assigned else None,
        "account": "default" if assigned else None,
        "layer": ["chore", "build", "strategy"][i % 3],
        "priority": i % 101,
        "quest_priority": None,
        "title": None,
        "ev": (i % 100) / 100,
        "ev_p50": 0.5,
        "ev_p90": 0.9,
        "override": False,
        "min_tier": 1,
        "est_cost_usd": 0.001 * (i % 10),
        "decided_at": decided_at_ms + i,
        "dry_run": False,
        "event_id": f"{decided_at_ms}-{i}",
        "policy_version": "test",
        "alternatives": [
            {
                "slot_id": f"slot-{i % 7}",
                "model": "haiku",
                "account": "default",
                "tier": 1,
                "verdict": "chosen" if assigned else "busy",
            }
        ],
    }


def add_records(r: redis.Redis, key: str, records: list[dict[str, Any]]) -> None:
    for start in range(0, len(records), 1000):
        pipe = r.pipeline(transaction=False)
        for record in records[start : start + 1000]:
            pipe.xadd(key, {"data": orjson.dumps(record)})
        pipe.execute()


@pytest.fixture
def synthetic() -> Callable[..., dict[str, Any]]:
    return synthetic_record


@pytest.fixture
def add() -> Callable[[redis.Redis, str, list[dict[str, Any]]], None]:
    return add_records

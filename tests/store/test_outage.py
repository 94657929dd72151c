"""Database unreachable: decisions wait in Redis, pending, and each lands exactly once when it
returns, whether the same recorder carries on or a new one takes over."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
import redis
from sqlalchemy import Engine
from support.processes import wait_for

from store.db import make_engine
from streams.keys import RECORDER_GROUP, Keys
from worker.recorder import Recorder
from worker.signals import StopFlag

pytestmark = [pytest.mark.integration, pytest.mark.faults]


def _unreachable(database_url: str, tmp_path: Any) -> str:
    if database_url.startswith("sqlite"):
        return f"sqlite:///{tmp_path}/no/such/dir/store.sqlite3"
    return "postgresql+psycopg://postgres@127.0.0.1:1/test"  # nothing listens on port 1


def _tasks(n: int) -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = [{"type": "slot.free", "slot_id": f"h{i}", "model": "haiku"} for i in range(5)]
    docs += [{"type": "task.pending", "task_id": f"t{i}", "priority": i % 100, "requires": {}} for i in range(n)]
    return docs


def _pending(r: redis.Redis, key: str) -> int:
    try:
        return int(r.xpending(key, RECORDER_GROUP)["pending"])
    except redis.ResponseError:  # the recorder has not created its group yet
        return -1


def test_same_recorder_carries_on_when_the_database_returns(
    r: redis.Redis,
    prefix: str,
    engine: Engine,
    database_url: str,
    tmp_path: Any,
    kit: Any,
    running_worker: Callable[[], Any],
    make_recorder: Callable[..., Recorder],
) -> None:
    keys = Keys(prefix)
    running_worker()
    kit.publish(_tasks(40))
    records = wait_for(
        lambda: len(kit.records(keys.decisions)) >= 40 and kit.records(keys.decisions), what="40 decisions"
    )
    rec = make_recorder(engine=make_engine(_unreachable(database_url, tmp_path)), stop=StopFlag())
    thread = threading.Thread(target=rec.run, daemon=True)
    thread.start()
    # it has read the batch and holds it, unacknowledged, while the database is away
    wait_for(lambda: _pending(r, keys.decisions) == len(records), what="the batch pending during the outage")
    assert kit.count() == 0

    rec.engine = engine  # the database is back
    wait_for(lambda: kit.count() == len(records), what="every decision recorded after the outage")
    wait_for(lambda: _pending(r, keys.decisions) == 0, what="the batch acknowledged")
    rec.stop.stop()
    thread.join(timeout=10)
    assert sorted(kit.ids()) == sorted(d["decision_id"] for d in records)


def test_recorder_stopped_during_outage_loses_nothing(
    r: redis.Redis,
    prefix: str,
    engine: Engine,
    database_url: str,
    tmp_path: Any,
    kit: Any,
    running_worker: Callable[[], Any],
    make_recorder: Callable[..., Recorder],
) -> None:
    keys = Keys(prefix)
    running_worker()
    kit.publish(_tasks(25))
    records = wait_for(
        lambda: len(kit.records(keys.decisions)) >= 25 and kit.records(keys.decisions), what="25 decisions"
    )
    broken = make_recorder(engine=make_engine(_unreachable(database_url, tmp_path)), stop=StopFlag())
    thread = threading.Thread(target=broken.run, daemon=True)
    thread.start()
    wait_for(lambda: _pending(r, keys.decisions) == len(records), what="the batch pending during the outage")
    broken.stop.stop()  # SIGTERM while the database is down: exits without acknowledging
    thread.join(timeout=10)
    assert not thread.is_alive()
    assert _pending(r, keys.decisions) == len(records)

    # more decisions while nobody records
    kit.publish([{"type": "task.pending", "task_id": f"late{i}", "priority": 50, "requires": {}} for i in range(10)])
    total = wait_for(
        lambda: len(kit.records(keys.decisions)) >= len(records) + 10 and kit.records(keys.decisions),
        what="10 more decisions",
    )

    fresh = make_recorder()  # a new consumer: reclaims what the first one left pending
    kit.drain_until(fresh, lambda: kit.count() == len(total), what="every decision recorded")
    assert sorted(kit.ids()) == sorted(d["decision_id"] for d in total)
    assert _pending(r, keys.decisions) == 0

"""Redis refusing the worker's atomic step, turn after turn, for longer than the poison-entry retry
budget (max_deliveries): out of memory (maxmemory reached, noeviction), or a key of the wrong type
that ops created by hand. Each refusal leaves the batch pending and the next turn reclaims it, which
counts one more delivery; none of those may count against the entries. When Redis accepts the
step again, the batch is routed, not dead-lettered as "failed after N deliveries"."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
import redis
from support.servers import RedisServer

from streams.clients import Dispatcher, Slot
from streams.keys import Keys
from worker.routing import RoutingWorker
from worker.settings import Settings
from worker.signals import StopFlag

pytestmark = [pytest.mark.faults, pytest.mark.integration]

MAX_DELIVERIES = 2
FAILED_TURNS = 3 * MAX_DELIVERIES


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path / "redis").start()
    yield server
    server.close()


def _worker(server: RedisServer) -> RoutingWorker:
    settings = Settings(
        redis_url=server.url, prefix="refused:", consumer="w1", block_ms=50, max_deliveries=MAX_DELIVERIES
    )
    return RoutingWorker(settings, server.client(), stop=StopFlag())


def _turns_refused(worker: RoutingWorker, turns: int) -> list[str]:
    errors = []
    for _ in range(turns):
        try:
            worker.step()
        except redis.ResponseError as exc:  # what run() does on any error: back off, rebuild, retry
            errors.append(str(exc))
    return errors


def _assert_routed_not_dead_lettered(r: redis.Redis, keys: Keys) -> None:
    assert r.xlen(keys.dead) == 0, [orjson.loads(f[b"data"])["error"] for _, f in r.xrange(keys.dead)]
    statuses = [orjson.loads(f[b"data"]) for _, f in r.xrange(keys.status)]
    assert [(s["type"], s["task_id"]) for s in statuses] == [("assigned", "a")]
    assert r.xpending(keys.events, "router")["pending"] == 0


def test_steps_refused_for_lack_of_memory_do_not_dead_letter_valid_entries(server: RedisServer) -> None:
    keys = Keys("refused:")
    r = server.client()
    worker = _worker(server)
    worker.step()
    assert worker.router is not None
    Slot(r, slot_id="h1", model="haiku", keys=keys).free()
    Dispatcher(r, keys).publish_task("a", priority=50)
    r.config_set("maxmemory-policy", "noeviction")
    r.config_set("maxmemory", int(r.info("memory")["used_memory"]) + 1024)

    errors = _turns_refused(worker, FAILED_TURNS)
    assert len(errors) == FAILED_TURNS and all("maxmemory" in e for e in errors), errors
    assert r.xpending(keys.events, "router")["pending"] == 2  # read, never acknowledged

    r.config_set("maxmemory", 0)
    for _ in range(3):
        worker.step()
    _assert_routed_not_dead_lettered(r, keys)


def test_steps_refused_over_a_wrong_typed_key_do_not_dead_letter_valid_entries(server: RedisServer) -> None:
    """Unlike running out of memory, a wrong-typed key lets every other call through: each turn
    rebuilds the ledger and reclaims the batch (one more delivery each time) before the step is
    refused again."""
    keys = Keys("refused:")
    r = server.client()
    worker = _worker(server)
    worker.step()
    r.set(keys.assign("h1"), "not a stream")
    Slot(r, slot_id="h1", model="haiku", keys=keys).free()
    Dispatcher(r, keys).publish_task("a", priority=50)

    errors = _turns_refused(worker, FAILED_TURNS)
    assert len(errors) == FAILED_TURNS and all("WRONGTYPE" in e for e in errors), errors
    delivered = r.xpending_range(keys.events, "router", min="-", max="+", count=10)
    assert [p["times_delivered"] for p in delivered] == [FAILED_TURNS] * 2  # more than max_deliveries

    r.delete(keys.assign("h1"))
    for _ in range(3):
        worker.step()
    _assert_routed_not_dead_lettered(r, keys)

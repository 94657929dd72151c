"""Poison input (ARCHITECTURE.md invariant 3): an entry whose processing raises unexpectedly is
retried a bounded number of times, then dead-lettered with the error; the loop carries on, and the
entries that happened to share its batch are routed, not dead-lettered with it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
import pytest
import redis
from support.processes import RouterProcess, wait_for
from support.scorers import POISON_PREFIX

from streams.clients import Dispatcher, Slot
from streams.keys import Keys

pytestmark = [pytest.mark.faults, pytest.mark.integration]

MAX_DELIVERIES = 3


def _statuses(r: redis.Redis, keys: Keys) -> dict[str, str]:
    return {d["task_id"]: d["type"] for d in (orjson.loads(f[b"data"]) for _, f in r.xrange(keys.status))}


def test_poison_entry_is_retried_then_dead_lettered_and_the_loop_goes_on(
    r: redis.Redis, keys: Keys, start_worker: Callable[..., RouterProcess]
) -> None:
    dispatcher = Dispatcher(r, keys)
    for n in range(4):
        Slot(r, slot_id=f"h{n}", model="haiku", keys=keys).free()
    # published before the worker starts, so the poison shares a batch with good entries
    dispatcher.publish_task("good-0", priority=40)
    poison_id = dispatcher.publish_task(f"{POISON_PREFIX}1", priority=50)
    dispatcher.publish_task("good-1", priority=60)
    worker = start_worker(
        env={
            "ROUTER_EV_SCORER": "support.scorers:explosive",
            "ROUTER_MAX_DELIVERIES": str(MAX_DELIVERIES),
            "PYTHONPATH": "tests",
        }
    )
    wait_for(lambda: r.xlen(keys.dead) >= 1, what="the poison entry to be dead-lettered")
    dead: Any = r.xrange(keys.dead)
    assert len(dead) == 1
    letter = orjson.loads(dead[0][1][b"data"])
    assert letter["source_id"] == poison_id
    assert f"failed after {MAX_DELIVERIES} deliveries" in letter["error"]
    assert "scorer exploded on poison-1" in letter["error"]
    assert orjson.loads(letter["raw"])["task_id"] == "poison-1"
    # the loop carries on: the batch-mates and later tasks are routed
    dispatcher.publish_task("good-2", priority=70)
    wait_for(
        lambda: all(_statuses(r, keys).get(f"good-{n}") == "assigned" for n in range(3)),
        what="the other tasks assigned",
    )
    assert "poison-1" not in _statuses(r, keys)
    assert r.xpending(keys.events, "router")["pending"] == 0
    assert worker.proc.poll() is None
    assert worker.log().count("processing failed; batch will be retried") == MAX_DELIVERIES
    assert worker.terminate() == 0

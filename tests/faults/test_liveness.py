"""Slot liveness end to end: a slot takes an assignment and goes silent without reporting
task.started; after the assignment timeout the task goes back to waiting (decision record
`assignment_lapsed`) and is assigned to a live slot."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
import pytest
import redis
from support.processes import RouterProcess, wait_for

from streams.clients import Dispatcher, Slot
from streams.keys import Keys

pytestmark = [pytest.mark.faults, pytest.mark.integration]


def _decisions(r: redis.Redis, keys: Keys, task_id: str) -> list[dict[str, Any]]:
    docs = [orjson.loads(f[b"data"]) for _, f in r.xrange(keys.decisions)]
    return [d for d in docs if d["task_id"] == task_id]


def test_silent_slot_loses_its_unstarted_task_to_a_live_one(
    r: redis.Redis, keys: Keys, start_worker: Callable[..., RouterProcess]
) -> None:
    worker = start_worker(env={"ROUTER_ASSIGNMENT_TIMEOUT_S": "1", "ROUTER_STALE_AFTER_S": "1"})
    silent = Slot(r, slot_id="h-silent", model="haiku", keys=keys)
    live = Slot(r, slot_id="h-live", model="haiku", keys=keys)
    silent.free()
    Dispatcher(r, keys).publish_task("t-lapse", priority=50)
    wait_for(lambda: [d["outcome"] for d in _decisions(r, keys, "t-lapse")] == ["assigned"], what="first assignment")
    assert _decisions(r, keys, "t-lapse")[0]["chosen_slot_id"] == "h-silent"
    live.free()

    def reassigned() -> bool:
        live.heartbeat()  # the live slot keeps talking; the silent one says nothing
        return any(d.get("chosen_slot_id") == "h-live" for d in _decisions(r, keys, "t-lapse"))

    wait_for(reassigned, timeout_s=20, every_s=0.2, what="the task reassigned to the live slot")
    records = _decisions(r, keys, "t-lapse")
    assert [(d["outcome"], d["reason_code"]) for d in records][1][1] == "assignment_lapsed"
    assert [d["outcome"] for d in records] == ["assigned", "await_slot", "assigned"]
    assert "h-silent" in records[1]["reason"]
    assignments = [orjson.loads(f[b"data"])["task_id"] for _, f in r.xrange(keys.assign("h-live"))]
    assert assignments == ["t-lapse"]
    assert worker.terminate() == 0

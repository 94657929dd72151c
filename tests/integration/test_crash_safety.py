"""SIGKILL the worker in the middle of a stream of events, restart it, and check the invariants:
every task assigned exactly once or still awaiting, and no slot ever holding two tasks."""

from __future__ import annotations

import random
import threading
from collections import Counter
from typing import Any

import orjson
import pytest
import redis
from support.processes import wait_for

from streams.clients import Dispatcher
from streams.keys import Keys

pytestmark = pytest.mark.integration

FLEET = (
    [(f"h{i}", "haiku") for i in range(6)]
    + [(f"s{i}", "sonnet") for i in range(3)]
    + [("o0", "opus"), ("o1", "opus"), ("g0", "gpt-5")]
)
TASKS = 400


class SimulatedFleet(threading.Thread):
    """Slots that take each assignment, note any second task while busy, and report free at once."""

    def __init__(self, r: redis.Redis, keys: Keys) -> None:
        super().__init__(daemon=True)
        self.r = r
        self.keys = keys
        self.busy: dict[str, str | None] = {slot_id: None for slot_id, _ in FLEET}
        self.models = dict(FLEET)
        self.last = {keys.assign(slot_id): "0" for slot_id, _ in FLEET}
        self.received: list[tuple[str, str]] = []  # (slot, task)
        self.violations: list[str] = []
        self.halt = threading.Event()

    def run(self) -> None:
        for slot_id, model in FLEET:
            self._free(slot_id, model, None)
        while not self.halt.is_set():
            reply = self.r.xread(self.last, block=100)
            for stream, entries in reply or []:
                for entry_id, fields in entries:
                    self.last[stream.decode()] = entry_id.decode()
                    self._take(orjson.loads(fields[b"data"]))

    def _take(self, assignment: dict[str, Any]) -> None:
        slot_id, task_id = assignment["slot_id"], assignment["task_id"]
        if self.busy[slot_id] is not None:
            self.violations.append(f"{slot_id} got {task_id} while holding {self.busy[slot_id]}")
        self.received.append((slot_id, task_id))
        self.busy[slot_id] = task_id
        self._free(slot_id, self.models[slot_id], task_id)

    def _free(self, slot_id: str, model: str, done: str | None) -> None:
        self.busy[slot_id] = None
        doc: dict[str, Any] = {"type": "slot.free", "slot_id": slot_id, "model": model}
        if done is not None:
            doc["completed"] = {"task_id": done, "input_tokens": 100, "output_tokens": 10, "cost_usd": 0.001}
        self.r.xadd(self.keys.events, {"data": orjson.dumps(doc)})


def test_kill_minus_nine_mid_stream_loses_and_duplicates_nothing(
    r: redis.Redis, redis_url: str, keys: Keys, start_worker: Any
) -> None:
    rand = random.Random(1234)
    worker = start_worker()
    fleet = SimulatedFleet(redis.Redis.from_url(redis_url), keys)
    fleet.start()
    dispatcher = Dispatcher(r, keys)
    kill_points = sorted(rand.sample(range(40, TASKS - 40), 3))
    published = 0
    try:
        for kill_at in [*kill_points, TASKS]:
            while published < kill_at:
                requires = rand.choice([{}, {}, {"coding": 7}, {"reasoning": 9}])
                dispatcher.publish_task(f"task-{published}", priority=rand.randint(0, 100), requires=requires)
                published += 1
            if kill_at < TASKS:
                wait_for(lambda k=kill_at: r.xlen(keys.decisions) >= k // 2, what="decisions before the kill")
                worker.kill()
                worker = start_worker()
        wait_for(lambda: len(fleet.received) >= TASKS, timeout_s=60, what="every task assigned")
        wait_for(lambda: r.xpending(keys.events, "router")["pending"] == 0, what="all events acknowledged")
    finally:
        fleet.halt.set()
        fleet.join(timeout=5)
    per_task = Counter(task for _, task in fleet.received)
    assert fleet.violations == []
    assert sorted(per_task) == sorted(f"task-{i}" for i in range(TASKS))
    assert max(per_task.values()) == 1
    assigned_status = Counter(
        orjson.loads(f[b"data"])["task_id"] for _, f in r.xrange(keys.status) if b'"assigned"' in f[b"data"]
    )
    assert assigned_status == per_task  # the dispatcher heard of each assignment exactly once
    assert r.hlen(keys.state(dry_run=False).waiting) == 0

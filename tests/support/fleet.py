"""A simulated fleet of slots and a steady dispatcher, as threads, for fault-injection runs.

The fleet takes each assignment, holds it for a short seeded random time, then reports the slot
free with the task completed. It records every assignment and notes a violation whenever a slot
receives a task while it still holds one (a double-booked slot)."""

from __future__ import annotations

import heapq
import random
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from typing import Any, TypeVar

import orjson
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from streams.keys import Keys

T = TypeVar("T")

FLEET = (
    [(f"h{i}", "haiku") for i in range(6)]
    + [(f"s{i}", "sonnet") for i in range(3)]
    + [("o0", "opus"), ("o1", "opus"), ("g0", "gpt-5")]
)
REQUIRES = ({}, {}, {}, {"coding": 7}, {"reasoning": 9}, {"writing": 5})
OUTAGE_S = 60.0  # how long a call is retried while Redis is down (restart tests)


def retrying(call: Callable[[], T], *, halt: threading.Event) -> T:
    """`call()`, retried while Redis is unreachable: the fleet and dispatcher ride out a restart.
    A retried XADD may land twice; repeated slot.free and task.pending events are harmless."""
    deadline = time.monotonic() + OUTAGE_S
    while True:
        try:
            return call()
        except (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError):
            if time.monotonic() > deadline or halt.wait(0.05):
                raise


def publish_once(r: redis.Redis, stream: str, data: bytes, *, halt: threading.Event) -> None:
    """XADD that survives an outage without landing twice: a retry first looks for the entry's
    nonce (a field the router ignores), since a lost reply does not mean a lost write. A duplicate
    slot.free would tell the router a busy slot is free. (`r` must not retry by itself.)"""
    nonce = uuid.uuid4().hex.encode()
    tries = 0

    def attempt() -> None:
        nonlocal tries
        tries += 1
        if tries > 1 and _landed(r, stream, nonce):
            return
        r.xadd(stream, {"data": data, "nonce": nonce})

    retrying(attempt, halt=halt)


def _landed(r: redis.Redis, stream: str, nonce: bytes) -> bool:
    recent: Any = r.xrevrange(stream, count=5000)
    return any(fields.get(b"nonce") == nonce for _, fields in recent)


def client(url: str) -> redis.Redis:
    """A client that never retries a command by itself (see publish_once)."""
    return redis.Redis.from_url(url, socket_timeout=10, retry=Retry(NoBackoff(), 0))


class Fleet(threading.Thread):
    def __init__(
        self,
        r: redis.Redis,
        keys: Keys,
        *,
        seed: int,
        hold_s: tuple[float, float] = (0.0, 0.01),
        slots: tuple[tuple[str, str], ...] = tuple(FLEET),
    ) -> None:
        super().__init__(daemon=True, name="fleet")
        self.r = r
        self.keys = keys
        self.rand = random.Random(seed)
        self.hold_s = hold_s
        self.models = dict(slots)
        self.busy: dict[str, str | None] = {slot_id: None for slot_id in self.models}
        self.last = {keys.assign(slot_id): "0" for slot_id in self.models}
        self.received: list[tuple[str, str]] = []  # (slot, task) in arrival order
        self.violations: list[str] = []
        self.errors: list[str] = []
        self.halt = threading.Event()
        self._due: list[tuple[float, str]] = []  # (monotonic time, slot) to report free

    def run(self) -> None:
        try:
            for slot_id in self.models:
                self._free(slot_id, None)
            while not self.halt.is_set():
                self._release_due()
                reply = retrying(lambda: self.r.xread(self.last, block=5), halt=self.halt)
                for stream, entries in reply or []:
                    for entry_id, fields in entries:
                        self.last[stream.decode()] = entry_id.decode()
                        self._take(orjson.loads(fields[b"data"]))
        except Exception as exc:  # surfaced by the test's checks rather than lost in a thread
            self.errors.append(f"{type(exc).__name__}: {exc}")

    def _take(self, assignment: dict[str, Any]) -> None:
        slot_id, task_id = assignment["slot_id"], assignment["task_id"]
        if self.busy[slot_id] is not None:
            self.violations.append(f"{slot_id} got {task_id} while holding {self.busy[slot_id]}")
        self.received.append((slot_id, task_id))
        self.busy[slot_id] = task_id
        heapq.heappush(self._due, (time.monotonic() + self.rand.uniform(*self.hold_s), slot_id))

    def _release_due(self) -> None:
        now = time.monotonic()
        while self._due and self._due[0][0] <= now:
            _, slot_id = heapq.heappop(self._due)
            self._free(slot_id, self.busy[slot_id])

    def _free(self, slot_id: str, done: str | None) -> None:
        self.busy[slot_id] = None
        doc: dict[str, Any] = {"type": "slot.free", "slot_id": slot_id, "model": self.models[slot_id]}
        if done is not None:
            doc["completed"] = {"task_id": done, "input_tokens": 100, "output_tokens": 10, "cost_usd": 0.001}
        publish_once(self.r, self.keys.events, orjson.dumps(doc), halt=self.halt)

    def per_task(self) -> Counter[str]:
        return Counter(task for _, task in self.received)

    def stop(self) -> None:
        self.halt.set()
        self.join(timeout=10)


class Dispatcher(threading.Thread):
    """Publishes `count` tasks at about `rate` per second, seeded."""

    def __init__(self, r: redis.Redis, keys: Keys, *, seed: int, count: int, rate: float, name: str = "task") -> None:
        super().__init__(daemon=True, name="dispatcher")
        self.r = r
        self.keys = keys
        self.rand = random.Random(seed)
        self.count = count
        self.rate = rate
        self.prefix = name
        self.published = 0
        self.errors: list[str] = []
        self.halt = threading.Event()

    def task_ids(self) -> list[str]:
        return [f"{self.prefix}-{i}" for i in range(self.count)]

    def run(self) -> None:
        started = time.monotonic()
        try:
            while self.published < self.count and not self.halt.is_set():
                due = int((time.monotonic() - started) * self.rate) + 1
                batch = []
                while self.published < min(due, self.count):
                    doc = {
                        "type": "task.pending",
                        "task_id": f"{self.prefix}-{self.published}",
                        "priority": self.rand.randint(0, 100),
                        "requires": self.rand.choice(REQUIRES),
                    }
                    batch.append(orjson.dumps(doc))
                    self.published += 1
                if batch:
                    retrying(lambda b=batch: self._publish(b), halt=self.halt)
                self.halt.wait(0.005)  # pacing, not synchronisation
        except Exception as exc:
            self.errors.append(f"{type(exc).__name__}: {exc}")

    def _publish(self, batch: list[bytes]) -> None:
        pipe = self.r.pipeline(transaction=False)
        for data in batch:
            pipe.xadd(self.keys.events, {"data": data})
        pipe.execute()

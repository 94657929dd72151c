"""The routing worker recovering, on a real Redis: a restart under an edited catalogue, a write
that fails inside the atomic step, a deposed leader's reads, a backlog after downtime."""

from __future__ import annotations

import time
from importlib import resources
from pathlib import Path

import orjson
import redis

from streams.clients import Dispatcher, Slot
from streams.keys import Keys
from worker.routing import RoutingWorker
from worker.settings import Settings
from worker.signals import StopFlag

SONNET_CAPS = "capabilities = { coding = 8, reasoning = 7, analysis = 7, writing = 8, safety = 8 }"


def _worker(redis_url: str, prefix: str, consumer: str, **kw: object) -> RoutingWorker:
    settings = Settings(redis_url=redis_url, prefix=prefix, consumer=consumer, lease_ttl_ms=30_000, block_ms=50, **kw)
    return RoutingWorker(settings, redis.Redis.from_url(redis_url, socket_timeout=10), stop=StopFlag())


def _statuses(r: redis.Redis, keys: Keys) -> list[dict]:
    return [orjson.loads(f[b"data"]) for _, f in r.xrange(keys.status)]


def test_a_catalogue_edit_across_a_restart_keeps_routing_and_dead_letters_nothing(
    r: redis.Redis, redis_url: str, prefix: str, tmp_path: Path
) -> None:
    """A waiting task's `models` is restored from the snapshot computed under the old catalogue.
    After an edit lowering sonnet's coding, a free sonnet slot must go to a task it can still
    serve; were the task filed under the old catalogue, every batch would fail and its good inputs
    be dead-lettered as poison."""
    keys = Keys(prefix)
    first = _worker(redis_url, prefix, "w1")
    Dispatcher(r, keys).publish_task("deep", priority=50, requires={"coding": 8})
    for _ in range(5):
        first.step()
    assert [s["type"] for s in _statuses(r, keys)] == ["await_slot"]
    first.lease.release()

    text = resources.files("router").joinpath("data/catalog.toml").read_text()
    assert SONNET_CAPS in text
    edited = tmp_path / "catalog.toml"
    edited.write_text(text.replace(SONNET_CAPS, SONNET_CAPS.replace("coding = 8", "coding = 7")))

    second = _worker(redis_url, prefix, "w2", catalog_path=str(edited), max_deliveries=2)
    Slot(r, slot_id="s1", model="sonnet", keys=keys).free()
    Dispatcher(r, keys).publish_task("light", priority=40, requires={})
    for _ in range(20):
        second.step()
    dead = [orjson.loads(f[b"data"]) for _, f in r.xrange(keys.dead)]
    assert dead == [], f"valid events were dead-lettered: {[d['error'] for d in dead]}"
    assert any(s["type"] == "assigned" and s["task_id"] == "light" for s in _statuses(r, keys))


def test_a_write_failing_inside_the_atomic_step_leaves_the_inputs_unacknowledged(
    r: redis.Redis, redis_url: str, prefix: str
) -> None:
    """The atomic step is one Lua script, and Redis does not roll back a script's earlier writes
    when a later command errors. So the XACKs must come last: if an output write fails (here
    WRONGTYPE on the slot's assign key, equally OOM under maxmemory), the inputs stay pending, or
    the ledger snapshot holds what they did; never acknowledged with nothing written (invariant 1)."""
    keys = Keys(prefix)
    r.set(keys.assign("h1"), "not a stream")  # any error inside the script after the acks
    w = _worker(redis_url, prefix, "w1")
    Slot(r, slot_id="h1", model="haiku", keys=keys).free()
    Dispatcher(r, keys).publish_task("a", priority=50)
    for _ in range(3):
        try:
            w.step()
        except redis.ResponseError:
            w.router = None  # what run() does: rebuild from the snapshot and retry
    r.delete(keys.assign("h1"))
    for _ in range(5):
        w.step()
    pending = r.xpending(keys.events, "router")["pending"]
    waiting = r.hexists(keys.state(dry_run=False).waiting, "a")
    assigned = r.hexists(keys.state(dry_run=False).assigned, "a")
    slot_known = r.hexists(keys.state(dry_run=False).slots, "h1")
    assert pending or ((waiting or assigned) and slot_known), "inputs acked, yet the ledger never recorded them"


def test_entries_a_deposed_leader_read_are_not_processed_after_later_entries(
    r: redis.Redis, redis_url: str, prefix: str
) -> None:
    """The router relies on one total order of events. A deposed leader that wakes inside its loop
    and reads entries (its write is fenced) must not leave them behind for the new leader to
    process after later ones: here a task.cancelled would be processed before its task.pending,
    the cancel would do nothing, and the cancelled task would be routed."""
    keys = Keys(prefix)
    old = _worker(redis_url, prefix, "old")
    new = _worker(redis_url, prefix, "new")
    old.step()
    assert old.router is not None
    r.delete(keys.state(dry_run=False).leader)  # old stalls past its lease
    new.step()
    assert new.router is not None
    Dispatcher(r, keys).publish_task("t1", priority=50)
    old.step()  # reads t1's task.pending, its commit is fenced
    assert old.router is None
    Dispatcher(r, keys).cancel("t1")
    Slot(r, slot_id="h1", model="haiku", keys=keys).free()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and r.xpending(keys.events, "router")["pending"]:
        new.step()
    for _ in range(3):
        new.step()
    kinds = [s["type"] for s in _statuses(r, keys) if s["task_id"] == "t1"]
    assert "assigned" not in kinds and "await_slot" not in kinds, f"cancelled task was routed: {kinds}"


def test_catching_up_after_downtime_keeps_assignments_whose_heartbeats_are_still_queued(
    r: redis.Redis, redis_url: str, prefix: str
) -> None:
    """Staleness and lapse are judged against the wall clock at processing time. After the router
    was down longer than the staleness window, the first batch of the backlog must not lapse a
    busy, unstarted slot whose heartbeats sit later in the same backlog: that would send its task
    back to waiting (and to another slot) while the slot works on it."""
    keys = Keys(prefix)
    now = [time.time()]
    settings = Settings(
        redis_url=redis_url, prefix=prefix, consumer="w1", lease_ttl_ms=30_000, block_ms=50, batch_size=2
    )
    w = RoutingWorker(settings, redis.Redis.from_url(redis_url), stop=StopFlag(), clock=lambda: now[0])
    h1 = Slot(r, slot_id="h1", model="haiku", keys=keys)
    h1.free()
    Dispatcher(r, keys).publish_task("a", priority=50)
    for _ in range(3):
        w.step()
    assert [s["type"] for s in _statuses(r, keys)] == ["assigned"]
    # the router is down for 200 s; the slot keeps heartbeating into the stream meanwhile
    Slot(r, slot_id="other", model="haiku", keys=keys).heartbeat()
    Slot(r, slot_id="other", model="haiku", keys=keys).heartbeat()
    h1.heartbeat()
    h1.started("a")
    now[0] += 200
    for _ in range(5):
        w.step()
    kinds = [s["type"] for s in _statuses(r, keys) if s["task_id"] == "a"]
    assert kinds == ["assigned"], f"assignment lapsed although the slot's heartbeat was queued: {kinds}"

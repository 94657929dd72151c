"""The ledger snapshot stays true to the ledger when one batch drops a task the snapshot holds and
files it again (a cancel then a re-publish, or a re-publish after a restart under a catalogue that
could not serve the old version): a task assigned in that batch leaves the waiting hash, so no later
leader assigns it a second time. Real Redis, in-process workers."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import orjson
import redis

from streams.clients import Dispatcher, Slot
from streams.keys import Keys
from worker.routing import RoutingWorker
from worker.settings import Settings
from worker.signals import StopFlag

OPUS_CAPS = "capabilities = { coding = 10, reasoning = 9, analysis = 9, writing = 9, safety = 9 }"


def _worker(redis_url: str, prefix: str, consumer: str, **kw: object) -> RoutingWorker:
    settings = Settings(redis_url=redis_url, prefix=prefix, consumer=consumer, lease_ttl_ms=30_000, block_ms=50, **kw)
    return RoutingWorker(settings, redis.Redis.from_url(redis_url, socket_timeout=10), stop=StopFlag())


def _statuses(r: redis.Redis, keys: Keys, task_id: str) -> list[str]:
    docs = [orjson.loads(f[b"data"]) for _, f in r.xrange(keys.status)]
    return [d["type"] for d in docs if d["task_id"] == task_id]


def test_cancel_then_republish_then_assign_in_one_batch_leaves_the_waiting_snapshot(
    r: redis.Redis, redis_url: str, prefix: str
) -> None:
    keys = Keys(prefix)
    state = keys.state(dry_run=False)
    w = _worker(redis_url, prefix, "w1")
    d = Dispatcher(r, keys)
    d.publish_task("T", priority=50, requires={})
    w.step()  # T waits: written to the waiting snapshot
    assert r.hexists(state.waiting, "T")

    # one batch: cancel T, publish it again, a slot frees up -> T is assigned in this batch
    d.cancel("T")
    d.publish_task("T", priority=50, requires={})
    Slot(r, slot_id="s1", model="haiku", keys=keys).free()
    w.step()
    assigned = [orjson.loads(f[b"data"]) for _, f in r.xrange(keys.assign("s1"))]
    assert [a["task_id"] for a in assigned] == ["T"]

    # T is assigned (held by s1): the waiting snapshot must no longer hold it
    assert not r.hexists(state.waiting, "T"), "stale waiting entry: T is both held by s1 and waiting"


def test_a_new_leader_does_not_assign_such_a_task_again(r: redis.Redis, redis_url: str, prefix: str) -> None:
    keys = Keys(prefix)
    w = _worker(redis_url, prefix, "w1")
    d = Dispatcher(r, keys)
    d.publish_task("T", priority=50, requires={})
    w.step()
    d.cancel("T")
    d.publish_task("T", priority=50, requires={})
    Slot(r, slot_id="s1", model="haiku", keys=keys).free()
    w.step()
    w.lease.release()  # a restart / failover: the next leader rebuilds from the snapshot

    w2 = _worker(redis_url, prefix, "w2")
    Slot(r, slot_id="s2", model="haiku", keys=keys).free()
    for _ in range(3):
        w2.step()
    got = {slot: [orjson.loads(f[b"data"])["task_id"] for _, f in r.xrange(keys.assign(slot))] for slot in ("s1", "s2")}
    assert got == {"s1": ["T"], "s2": []}, f"T assigned twice: {got}"


def _waiting_under_a_catalogue_that_cannot_serve_it(
    r: redis.Redis, redis_url: str, prefix: str, tmp_path: Path
) -> Path:
    """T (coding 10) waits, its leader stops; returns a catalogue where no model reaches coding 10."""
    keys = Keys(prefix)
    first = _worker(redis_url, prefix, "w1")
    Dispatcher(r, keys).publish_task("T", priority=50, requires={"coding": 10})
    first.step()
    assert r.hexists(keys.state(dry_run=False).waiting, "T")
    first.lease.release()
    text = resources.files("router").joinpath("data/catalog.toml").read_text()
    assert OPUS_CAPS in text
    edited = tmp_path / "catalog.toml"
    edited.write_text(text.replace(OPUS_CAPS, OPUS_CAPS.replace("coding = 10", "coding = 9")))
    return edited


def test_a_restored_unroutable_task_republished_and_assigned_leaves_the_snapshot(
    r: redis.Redis, redis_url: str, prefix: str, tmp_path: Path
) -> None:
    keys = Keys(prefix)
    edited = _waiting_under_a_catalogue_that_cannot_serve_it(r, redis_url, prefix, tmp_path)
    # first batch after the restart: T re-published with requirements the new catalogue serves, and a slot
    Dispatcher(r, keys).publish_task("T", priority=50, requires={})
    Slot(r, slot_id="s1", model="haiku", keys=keys).free()
    _worker(redis_url, prefix, "w2", catalog_path=str(edited)).step()
    assert [orjson.loads(f[b"data"])["task_id"] for _, f in r.xrange(keys.assign("s1"))] == ["T"]
    assert not r.hexists(keys.state(dry_run=False).waiting, "T"), "T is assigned but still in the waiting snapshot"
    assert _statuses(r, keys, "T") == ["await_slot", "assigned"]  # the replaced version is not decided


def test_a_restored_unroutable_task_cancelled_is_dropped_not_decided(
    r: redis.Redis, redis_url: str, prefix: str, tmp_path: Path
) -> None:
    keys = Keys(prefix)
    edited = _waiting_under_a_catalogue_that_cannot_serve_it(r, redis_url, prefix, tmp_path)
    Dispatcher(r, keys).cancel("T")
    _worker(redis_url, prefix, "w2", catalog_path=str(edited)).step()
    assert not r.hexists(keys.state(dry_run=False).waiting, "T")
    assert _statuses(r, keys, "T") == ["await_slot", "cancelled"]

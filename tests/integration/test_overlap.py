"""Overlapped turns (the run loop): a batch's atomic step is collected one turn later, after the
next batch has been routed. Real Redis, an in-process worker."""

from __future__ import annotations

from typing import Any

import orjson
import redis

from streams.clients import Dispatcher, Slot
from streams.keys import Keys
from worker.routing import RoutingWorker
from worker.settings import Settings
from worker.signals import StopFlag

BATCH = 4


def _worker(redis_url: str, prefix: str) -> RoutingWorker:
    settings = Settings(
        redis_url=redis_url, prefix=prefix, consumer="w1", lease_ttl_ms=30_000, block_ms=50, batch_size=BATCH
    )
    return RoutingWorker(settings, redis.Redis.from_url(redis_url, socket_timeout=10), stop=StopFlag())


def _publish_pairs(r: redis.Redis, keys: Keys, pairs: int) -> None:
    """`pairs` slots and as many tasks: every task finds a slot."""
    for i in range(pairs):
        Slot(r, slot_id=f"s{i:02d}", model="haiku", keys=keys).free()
        Dispatcher(r, keys).publish_task(f"t{i:02d}", priority=50, requires={})


def _assigned(r: redis.Redis, keys: Keys) -> list[str]:
    return sorted(orjson.loads(f[b"data"])["task_id"] for _, f in r.xrange(keys.status) if b'"assigned"' in f[b"data"])


def _pending(r: redis.Redis, keys: Keys) -> int:
    return int(r.xpending(keys.events, "router")["pending"])


def test_overlapped_turns_route_a_backlog_exactly_once(r: redis.Redis, redis_url: str, prefix: str) -> None:
    keys = Keys(prefix)
    _publish_pairs(r, keys, 10)  # 20 entries: five full batches
    w = _worker(redis_url, prefix)
    turns = 0
    while w.processed < 20 and turns < 50:
        w.step(overlap=True)
        turns += 1
    assert w.processed == 20
    assert _assigned(r, keys) == [f"t{i:02d}" for i in range(10)]
    assert _pending(r, keys) == 0  # caught up: the last step was collected, every entry acknowledged


def test_a_step_refused_in_flight_drops_the_batch_routed_on_it(r: redis.Redis, redis_url: str, prefix: str) -> None:
    """The worker claims the next batch, is deposed, then sends its step: Redis refuses it. The
    refusal is found a turn later, after the next batch was routed on top of it; both batches are
    dropped unwritten and stay pending, and the next leader routes them once."""
    keys = Keys(prefix)
    _publish_pairs(r, keys, 4)  # 8 entries: two full batches
    w = _worker(redis_url, prefix)
    leader_key = keys.state(dry_run=False).leader
    collect = w.reader.collect

    def collect_then_deposed() -> Any:
        got = collect()  # the claim of the next batch: a successor takes over right after
        r.set(leader_key, "99:successor")
        return got

    w.reader.collect = collect_then_deposed  # type: ignore[method-assign]
    w.step(overlap=True)  # routes batch 1, claims batch 2, sends a step that Redis refuses
    w.step(overlap=True)  # routes batch 2, finds step 1 refused: both dropped
    assert w.processed == 0
    assert _assigned(r, keys) == []
    assert _pending(r, keys) == 8  # nothing acknowledged: all of it still to route

    w.reader.collect = collect  # type: ignore[method-assign]
    r.delete(leader_key)  # the successor's lease ends
    for _ in range(5):
        w.step(overlap=True)
    assert _assigned(r, keys) == ["t00", "t01", "t02", "t03"]
    assert _pending(r, keys) == 0


def test_a_graceful_stop_finishes_the_batch_already_claimed(r: redis.Redis, redis_url: str, prefix: str) -> None:
    keys = Keys(prefix)
    for i in range(6):  # 12 entries: three full batches
        Slot(r, slot_id=f"s{i:02d}", model="haiku", keys=keys).free()
        Dispatcher(r, keys).publish_task(f"t{i:02d}", priority=50, requires={})
    settings = Settings(
        redis_url=redis_url, prefix=prefix, consumer="w1", lease_ttl_ms=30_000, block_ms=50, batch_size=BATCH
    )
    w = RoutingWorker(settings, redis.Redis.from_url(redis_url, socket_timeout=10), stop=StopFlag())
    step = w.step

    def one_turn_then_sigterm(**kw: object) -> None:
        step(**kw)  # type: ignore[arg-type]
        w.stop.stop()  # SIGTERM arrives during this turn

    w.step = one_turn_then_sigterm  # type: ignore[method-assign]
    assert w.run() == 0
    assert w.processed >= BATCH  # the batch whose step was in flight was finished
    pending = int(r.xpending(keys.events, "router")["pending"])
    assert pending == 0, f"{pending} entries claimed by the stopping worker were left unrouted and unacknowledged"

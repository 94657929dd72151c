"""The measured service times and the ETA correction live in the ledger snapshot (`ledger:rates`),
so a new leader keeps them: the first await after a takeover already has an ETA. Real Redis,
in-process workers."""

from __future__ import annotations

import orjson
import redis

from streams.clients import Dispatcher, Slot
from streams.keys import Keys
from worker.routing import RoutingWorker
from worker.settings import Settings
from worker.signals import StopFlag


def _worker(redis_url: str, prefix: str, consumer: str) -> RoutingWorker:
    settings = Settings(redis_url=redis_url, prefix=prefix, consumer=consumer, lease_ttl_ms=30_000, block_ms=50)
    return RoutingWorker(settings, redis.Redis.from_url(redis_url, socket_timeout=10), stop=StopFlag())


def test_a_new_leader_restores_the_service_rates_from_the_snapshot(r: redis.Redis, redis_url: str, prefix: str) -> None:
    keys = Keys(prefix)
    state = keys.state(dry_run=False)
    first = _worker(redis_url, prefix, "w1")
    dispatcher = Dispatcher(r, keys)
    slot = Slot(r, slot_id="h1", model="haiku", keys=keys)
    slot.free()
    dispatcher.publish_task("a", priority=50, requires={})
    first.step()  # a -> h1
    slot.free(completed={"task_id": "a"})
    first.step()  # h1's turn measured
    stored = orjson.loads(r.hget(state.rates, "model:haiku") or b"{}")
    assert stored["samples"] == 1 and stored["mean_ms"] >= 0
    assert first.router is not None
    measured = first.router.rates.mean_ms("haiku")
    first.lease.release()

    second = _worker(redis_url, prefix, "w2")
    second.step()
    assert second.router is not None
    assert second.router.rates.mean_ms("haiku") == measured

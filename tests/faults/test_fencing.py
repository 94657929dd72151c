"""A deposed leader that wakes after its lease lapsed cannot write (ARCHITECTURE.md invariant 5),
and what it read while deposed is still routed by its successor."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis
from support.failover import FailoverRun, Takeover
from support.processes import wait_for

from streams.clients import Dispatcher, Slot
from streams.commit import AtomicStep, Committer, FencedOut
from streams.keys import Keys
from streams.lease import Lease
from worker.routing import RoutingWorker
from worker.settings import Settings

pytestmark = [pytest.mark.faults, pytest.mark.integration]


def _lease(r: redis.Redis, keys: Keys, holder: str, ttl_ms: int) -> Lease:
    state = keys.state(dry_run=False)
    return Lease(r, leader_key=state.leader, fence_key=state.fence, holder=holder, ttl_ms=ttl_ms)


def _step(keys: Keys, note: bytes) -> AtomicStep:
    step = AtomicStep(keys.state(dry_run=False).leader)
    step.xadd(keys.decisions, note)
    step.hset(keys.state(dry_run=False).slots, "s1", note)
    return step


def test_late_write_of_a_deposed_leader_is_refused(r: redis.Redis, keys: Keys) -> None:
    old, new = _lease(r, keys, "old", ttl_ms=100), _lease(r, keys, "new", ttl_ms=10_000)
    assert old.try_acquire()
    stale_fence = old.value
    # the old leader pauses without renewing; its lease lapses and the standby takes over
    wait_for(lambda: new.try_acquire(), what="the standby to take the lapsed lease")
    assert new.token is not None and old.token is not None and new.token > old.token
    committer = Committer(r)
    with pytest.raises(FencedOut):
        committer.commit(_step(keys, b"late"), fence=stale_fence)
    committer.commit(_step(keys, b"fresh"), fence=new.value)
    assert [f[b"data"] for _, f in r.xrange(keys.decisions)] == [b"fresh"]
    assert r.hget(keys.state(dry_run=False).slots, "s1") == b"fresh"
    assert not old.renew()  # and its renewal tells it so


def test_write_after_the_lease_lapsed_is_refused_even_with_no_successor(r: redis.Redis, keys: Keys) -> None:
    lease = _lease(r, keys, "old", ttl_ms=50)
    assert lease.try_acquire()
    fence = lease.value
    wait_for(lambda: not r.exists(keys.state(dry_run=False).leader), what="the lease to lapse")
    with pytest.raises(FencedOut):
        Committer(r).commit(_step(keys, b"late"), fence=fence)
    assert r.xlen(keys.decisions) == 0


def _in_process_worker(redis_url: str, prefix: str, consumer: str) -> RoutingWorker:
    settings = Settings(redis_url=redis_url, prefix=prefix, consumer=consumer, lease_ttl_ms=30_000, block_ms=50)
    return RoutingWorker(settings, redis.Redis.from_url(redis_url, socket_timeout=10))


def test_entries_a_deposed_leader_read_are_routed_by_its_successor(
    r: redis.Redis, redis_url: str, prefix: str, keys: Keys
) -> None:
    old = _in_process_worker(redis_url, prefix, "old")
    new = _in_process_worker(redis_url, prefix, "new")
    old.step()
    assert old.router is not None
    # the old leader stalls (a pause longer than the lease); the lease lapses and the standby leads
    r.delete(keys.state(dry_run=False).leader)
    new.step()
    assert new.router is not None
    # new work arrives; the old leader, still believing it leads, wakes inside its loop and reads it
    Slot(r, slot_id="h0", model="haiku", keys=keys).free()
    Dispatcher(r, keys).publish_task("t1", priority=50)
    old.step()
    assert old.router is None  # its write was refused; the entries are pending under its name
    assert r.xlen(keys.status) == 0

    def assigned() -> bool:
        new.step()
        return any(b'"assigned"' in f[b"data"] for _, f in r.xrange(keys.status))

    wait_for(assigned, timeout_s=10, what="the successor to route what the deposed leader read")
    assert r.xpending(keys.events, "router")["pending"] == 0


def test_sigstop_of_the_leader_then_sigcont_duplicates_nothing(
    redis_url: str, tmp_path: Path, takeovers: list[Takeover]
) -> None:
    result = FailoverRun(
        seed=101, redis_url=redis_url, workdir=tmp_path, tasks=1200, rate=600.0, kills=2, pause=True
    ).run()
    print("takeovers after SIGSTOP:", result.takeovers)
    assert result.problems == []
    assert len(result.takeovers) == 2

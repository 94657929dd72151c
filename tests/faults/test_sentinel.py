"""A real Sentinel failover: three redis-sentinel processes, one primary, one replica, a live
worker, dispatcher and fleet on `redis+sentinel://`. The primary is killed with SIGKILL; the
sentinels promote the replica, everyone follows it without a restart, routing resumes within 10 s
and nothing runs twice."""

from __future__ import annotations

import shutil
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.failover import worker_env
from support.fleet import Dispatcher, Fleet
from support.processes import RouterProcess, wait_for
from support.sentinels import SentinelGroup

from streams.connection import connect
from streams.keys import Keys

pytestmark = [
    pytest.mark.faults,
    pytest.mark.skipif(shutil.which("redis-sentinel") is None, reason="needs Debian's redis-sentinel package"),
]
SLOTS = (("h0", "haiku"), ("h1", "haiku"), ("h2", "haiku"), ("s0", "sonnet"), ("o0", "opus"))


@pytest.fixture
def sentinels(tmp_path: Path) -> Iterator[SentinelGroup]:
    group = SentinelGroup(tmp_path / "sentinel")
    try:
        yield group
    finally:
        group.close()


def test_routing_follows_a_sentinel_failover_within_10_s(sentinels: SentinelGroup, tmp_path: Path, keys: Keys) -> None:
    worker = RouterProcess(
        ["worker", "--consumer", "w0"],
        env=worker_env(sentinels.url, keys.prefix, lease_ttl_ms=3000),
        log_path=tmp_path / "worker.log",
    )
    fleet = Fleet(connect(sentinels.url, socket_timeout=5), keys, seed=7, slots=SLOTS)
    dispatcher = Dispatcher(connect(sentinels.url, socket_timeout=5), keys, seed=7, count=400, rate=100)
    try:
        wait_for(lambda: '"leading"' in worker.log(), what="the worker to lead")
        fleet.start()
        dispatcher.start()
        wait_for(lambda: len(fleet.received) >= 100, timeout_s=30, what="routing before the failover")
        old_port = sentinels.primary.port
        assert sentinels.primary.proc is not None
        sentinels.primary.proc.send_signal(signal.SIGKILL)
        killed = time.monotonic()
        before = len(fleet.received)
        wait_for(lambda: sentinels.primary_port() not in (None, old_port), timeout_s=30, what="the promotion")
        wait_for(lambda: len(fleet.received) > before + 10, timeout_s=30, what="routing on the new primary")
        resumed_s = time.monotonic() - killed
        wait_for(lambda: dispatcher.published >= 400, timeout_s=60, what="every task published")
        print(f"\nSentinel failover: routing resumed {resumed_s:.2f} s after the primary's SIGKILL")
        assert resumed_s < 10
        assert fleet.errors == [] and dispatcher.errors == []
        assert [task for task, n in fleet.per_task().items() if n > 1] == []
        assert fleet.violations == []
        assert worker.terminate() == 0
    finally:
        dispatcher.halt.set()
        fleet.stop()
        worker.stop()

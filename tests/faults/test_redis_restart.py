"""Redis restarted in the middle of a run (ARCHITECTURE.md invariant 4): the worker and the recorder
back off, reconnect and carry on; nothing is lost, nothing is duplicated, neither process dies.

The server is the test's own, on a private port, with an append-only file fsynced on every write,
so the restart keeps every acknowledged write (losing data is a different failure)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.failover import check_invariants, settled, start_recorder, terminate_all, worker_env
from support.fleet import Dispatcher, Fleet, client
from support.processes import RouterProcess, wait_for
from support.servers import RedisServer

from streams.keys import Keys

pytestmark = [pytest.mark.faults, pytest.mark.integration]

TASKS = 1200


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path / "redis").start()
    yield server
    server.close()


def test_redis_restart_mid_run_loses_nothing(server: RedisServer, tmp_path: Path) -> None:
    prefix = f"restart:{uuid.uuid4().hex[:8]}:"
    keys = Keys(prefix)
    database_url = f"sqlite:///{tmp_path / 'decisions.sqlite3'}"
    recorder = start_recorder(server.url, prefix, database_url, tmp_path / "recorder.log")
    worker = RouterProcess(
        ["worker", "--consumer", "w0"],
        env=worker_env(server.url, prefix, lease_ttl_ms=2000),
        log_path=tmp_path / "worker.log",
    )
    fleet = Fleet(client(server.url), keys, seed=7)
    dispatcher = Dispatcher(client(server.url), keys, seed=7, count=TASKS, rate=400.0)
    r = server.client()
    try:
        wait_for(lambda: '"leading"' in worker.log(), what="the worker to lead")
        fleet.start()
        dispatcher.start()
        wait_for(lambda: dispatcher.published >= TASKS // 3, what="a third of the tasks published")

        server.stop()
        for proc in (worker, recorder):
            wait_for(lambda p=proc: "redis unavailable, backing off" in p.log(), what="both to notice the outage")
        server.start()

        wait_for(lambda: dispatcher.published >= TASKS, timeout_s=60, what="every task published")
        wait_for(lambda: len(fleet.received) >= TASKS, timeout_s=60, what="every task assigned")
        wait_for(lambda: settled(r, keys), timeout_s=60, what="every event and decision settled")
    finally:
        dispatcher.halt.set()
        fleet.stop()
        dispatcher.join(timeout=10)
    assert fleet.errors == [] and dispatcher.errors == []
    assert check_invariants(r, keys, database_url, fleet, dispatcher.task_ids()) == []
    for proc in (worker, recorder):
        assert proc.proc.poll() is None, proc.log()[-3000:]
        # backoff, not a busy loop: a handful of retries for an outage of a second or two
        assert proc.log().count("redis unavailable, backing off") < 40
    codes = terminate_all([worker, recorder])
    assert [code for _, code in codes] == [0, 0]

"""Fault-injection fixtures: takeover times are gathered across the failover runs and reported at
the end of the session (tests never write result files; bench/failover.py does)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from support.failover import Takeover, percentile
from support.processes import RouterProcess, wait_for

from streams.keys import Keys

TAKEOVERS: list[Takeover] = []
EVENTS: list[int] = []


@pytest.fixture
def keys(prefix: str) -> Keys:
    return Keys(prefix)


@pytest.fixture
def start_worker(redis_url: str, prefix: str, tmp_path: Path, r: redis.Redis) -> Iterator[Callable[..., RouterProcess]]:
    """Start `router worker` as a child process; by default wait until it leads."""
    started: list[RouterProcess] = []

    def start(
        *extra: str, env: dict[str, str] | None = None, wait: bool = True, url: str | None = None
    ) -> RouterProcess:
        consumer = f"w{len(started)}"
        proc = RouterProcess(
            ["worker", "--consumer", consumer, *extra],
            env={
                "REDIS_URL": url or redis_url,
                "ROUTER_PREFIX": prefix,
                "ROUTER_BLOCK_MS": "200",
                "ROUTER_LEASE_TTL_MS": "2000",
                **(env or {}),
            },
            log_path=tmp_path / f"worker-{consumer}.log",
        )
        started.append(proc)
        if wait:
            wait_for(lambda: '"leading"' in proc.log() or proc.proc.poll() is not None, what="the worker to lead")
            assert proc.proc.poll() is None, proc.log()
        return proc

    yield start
    for proc in started:
        proc.stop()


@pytest.fixture
def takeovers() -> list[Takeover]:
    return TAKEOVERS


@pytest.fixture
def event_counts() -> list[int]:
    return EVENTS


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not TAKEOVERS:
        return
    lease = [t.lease_s for t in TAKEOVERS]
    first = [t.decision_s for t in TAKEOVERS]
    terminalreporter.write_sep("-", "failover takeover times")
    terminalreporter.write_line(
        f"{len(EVENTS)} runs, {sum(EVENTS)} events, {len(TAKEOVERS)} kills of the leader: "
        f"lease p50 {percentile(lease, 0.5):.3f}s max {max(lease):.3f}s; "
        f"first decision p50 {percentile(first, 0.5):.3f}s max {max(first):.3f}s"
    )

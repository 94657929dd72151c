from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
from support.processes import RouterProcess, wait_for

from streams.keys import Keys


@pytest.fixture
def keys(prefix: str) -> Keys:
    return Keys(prefix)


@pytest.fixture
def start_worker(redis_url: str, prefix: str, tmp_path: Path, r: redis.Redis) -> Iterator[Callable[..., RouterProcess]]:
    """Start `router worker` as a child process and wait until it leads and reads."""
    started: list[RouterProcess] = []

    def start(*extra: str, env: dict[str, str] | None = None, wait: bool = True) -> RouterProcess:
        consumer = f"w{len(started)}"
        proc = RouterProcess(
            ["worker", "--consumer", consumer, *extra],
            env={
                "REDIS_URL": redis_url,
                "ROUTER_PREFIX": prefix,
                "ROUTER_BLOCK_MS": "200",
                "ROUTER_LEASE_TTL_MS": "2000",
                **(env or {}),
            },
            log_path=tmp_path / f"worker-{consumer}.log",
        )
        started.append(proc)
        if wait:
            state = Keys(prefix).state(dry_run="--dry-run" in extra)
            wait_for(
                lambda: (r.get(state.leader) or b"").endswith(consumer.encode()) or proc.proc.poll() is not None,
                what="the worker to take the lease",
            )
            assert proc.proc.poll() is None, proc.log()
        return proc

    yield start
    for proc in started:
        proc.stop()

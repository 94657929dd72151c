"""`router recorder` killed mid-batch and restarted: nothing missing, nothing duplicated."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis
from support.processes import RouterProcess, wait_for

from streams.keys import RECORDER_GROUP, Keys
from worker.settings import Settings

pytestmark = [pytest.mark.integration, pytest.mark.faults]

N = 20_000


def _recorder(settings: Settings, tmp_path: Path, name: str) -> RouterProcess:
    return RouterProcess(
        ["recorder", "--consumer", name],
        env={
            "REDIS_URL": settings.redis_url,
            "DATABASE_URL": settings.database_url,
            "ROUTER_PREFIX": settings.prefix,
            "ROUTER_BLOCK_MS": "100",
            "ROUTER_RECORDER_BATCH": "250",
        },
        log_path=tmp_path / f"{name}.log",
    )


def test_killed_recorder_restarts_without_loss_or_duplicates(
    r: redis.Redis,
    prefix: str,
    settings: Settings,
    tmp_path: Path,
    kit: Any,
    engine: Any,
    synthetic: Callable[..., dict[str, Any]],
    add: Callable[..., None],
) -> None:
    keys = Keys(prefix)
    add(r, keys.decisions, [synthetic(i) for i in range(N)])

    first = _recorder(settings, tmp_path, "first")
    try:
        wait_for(lambda: kit.count() > 0 or first.proc.poll() is not None, timeout_s=30, what="the first rows")
        first.kill()  # SIGKILL: mid-batch, no chance to acknowledge what it was writing
    finally:
        first.stop()
    recorded_before = kit.count()
    assert 0 < recorded_before < N, first.log()

    second = _recorder(settings, tmp_path, "second")
    try:
        wait_for(lambda: kit.count() == N, timeout_s=60, what=f"all {N} decisions after the restart")
        wait_for(lambda: r.xpending(keys.decisions, RECORDER_GROUP)["pending"] == 0, what="nothing left pending")
        assert second.terminate() == 0  # SIGTERM: finishes the batch and exits cleanly
    finally:
        second.stop()
    ids = kit.ids()
    assert len(ids) == len(set(ids)) == N
    assert set(ids) == {f"s-{i}" for i in range(N)}

"""Primary failover with a replica 200 ms behind (tests/support/replica_failover.py): the primary
killed with SIGKILL mid-stream, the replica promoted, worker, recorder, dispatcher and slots
following it. With ROUTER_MIN_REPLICAS=1 nothing may run twice, nothing durably published be lost,
and every decision be in SQL exactly once; the run with 0 beside it is reported, not judged (it
shows what the setting prevents). More runs: python -m bench.failover_replica."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.replica_failover import run_replica_failover

pytestmark = pytest.mark.faults


@pytest.mark.parametrize("seed", [101, 202])
def test_nothing_runs_twice_or_is_lost_across_a_failover_with_min_replicas_1(seed: int, tmp_path: Path) -> None:
    result = run_replica_failover(seed=seed, workdir=tmp_path, min_replicas=1)
    assert result.problems == []
    assert (result.two_slots, result.lost, result.sql_duplicates, result.sql_missing, result.sql_orphans) == (
        0,
        0,
        0,
        0,
        0,
    )
    assert result.resumed_s < 10


def test_without_min_replicas_the_same_failover_is_reported(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    result = run_replica_failover(seed=101, workdir=tmp_path, min_replicas=0)
    with capsys.disabled():
        print(
            f"\nROUTER_MIN_REPLICAS=0, seed 101: {result.two_slots} run by two slots, {result.lost} lost,"
            f" {result.sql_orphans} decisions in SQL the new primary never made"
        )
    assert result.tasks == 300

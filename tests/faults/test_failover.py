"""Kill -9 of the leader at seeded random points during a run, with a hot standby taking over
(ARCHITECTURE.md invariants 1, 2 and 5), over 20 seeded runs."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.failover import FailoverRun, Takeover

pytestmark = [pytest.mark.faults, pytest.mark.integration]

SEEDS = range(20)


@pytest.mark.parametrize("seed", SEEDS)
def test_standby_takes_over_after_kill_minus_nine(
    seed: int, redis_url: str, tmp_path: Path, takeovers: list[Takeover], event_counts: list[int]
) -> None:
    result = FailoverRun(seed=seed, redis_url=redis_url, workdir=tmp_path, tasks=1500, rate=700.0, kills=2).run()
    takeovers.extend(result.takeovers)
    event_counts.append(result.events)
    print(
        f"seed {seed}: {result.events} events, {result.decisions} decisions, takeovers "
        + ", ".join(f"{t.lease_s:.3f}s/{t.decision_s:.3f}s" for t in result.takeovers)
    )
    assert result.problems == []
    assert result.events >= 3000
    assert len(result.takeovers) == 2

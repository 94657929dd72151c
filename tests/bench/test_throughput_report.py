"""bench/throughput.py's report: the goals' ratios, and the ratios taken run by run."""

from __future__ import annotations

import pytest

from bench.harness import RunResult
from bench.throughput import _ratios, markdown, summary


def _run(kind: str, eps: float, rate: float | None = None, p99: float = 1.0) -> RunResult:
    return RunResult(kind=kind, offered_eps=rate, events=1000, achieved_eps=eps, p50_ms=0.0, p99_ms=p99, lost=0)


def test_the_paired_ratio_sets_each_run_beside_its_own_ceiling_run() -> None:
    # the machine slows down over the session: the ratio of the medians mixes fast and slow runs
    runs = {
        "ceiling@saturation": [_run("ceiling", e) for e in (100_000, 60_000, 50_000)],
        "router@saturation": [_run("router", e) for e in (52_000, 33_000, 20_000)],
        "ceiling@backlog": [_run("ceiling", e) for e in (90_000, 80_000, 85_000)],
        "router@backlog": [_run("router", e) for e in (54_000, 56_000, 34_000)],
        "ceiling@1000.0": [_run("ceiling", 1000, 1000.0, p99) for p99 in (1.0, 1.0, 2.0)],
        "router@1000.0": [_run("router", 1000, 1000.0, p99) for p99 in (2.0, 2.0, 3.0)],
    }
    table = {name: {k: summary(rs, k) for k in ("achieved_eps", "p50_ms", "p99_ms")} for name, rs in runs.items()}
    ratios = _ratios(table, runs, "router")
    assert ratios["throughput_vs_ceiling"] == pytest.approx(33_000 / 60_000)
    assert ratios["p99_at_1000_vs_ceiling"] == pytest.approx(2.0)
    paired = ratios["throughput_vs_ceiling_paired"]
    assert paired["by_run"] == [0.52, 0.55, 0.4]
    assert (paired["median"], paired["min"], paired["max"]) == pytest.approx((0.52, 0.4, 0.55))
    assert ratios["backlog_throughput_vs_ceiling"] == pytest.approx(54_000 / 85_000)
    assert ratios["backlog_throughput_vs_ceiling_paired"]["by_run"] == [0.6, 0.7, 0.4]
    text = markdown(table, {"router": ratios}, 3)
    assert "ceiling throughput, backlog: 0.64 (goal >= 0.5); run by run 0.60 [0.40-0.70]" in text
    assert "ceiling throughput, saturation: 0.55 (goal >= 0.5); run by run 0.52 [0.40-0.55]" in text

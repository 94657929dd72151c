"""`python -m bench.throughput --quick` end to end against the real Redis: the mixed workload's
runs complete with nothing lost, the standing backlog stays, and the report has every figure the
goals read. (Its timings are not asserted: --quick measures nothing.)"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_quick_run_of_the_mixed_workload_loses_nothing(redis_url: str, tmp_path: Path) -> None:
    out = tmp_path / "throughput.json"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p))
    cmd = [sys.executable, "-m", "bench.throughput", "--quick", "--no-compiled", "--redis-url", redis_url]
    done = subprocess.run([*cmd, "--out", str(out)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    doc = json.loads(out.read_text())
    assert doc["workload"] == "mixed"
    loads = ("1000.0", "5000.0", "saturation", "backlog")
    assert set(doc["summary"]) == {f"{kind}@{load}" for kind in ("ceiling", "router") for load in loads}
    for name, row in doc["summary"].items():
        assert row["lost"] == 0, name
        if name.startswith("router@"):
            assert row["waiting_at_end"]["min"] >= 2_900, name  # the standing backlog stayed
    for run in doc["runs"]["router@1000.0"]:
        assert run["events"] == 1_000 and run["p99_ms"] >= run["p50_ms"] >= 0
    ratios = doc["ratios"]["router"]
    assert {"throughput_vs_ceiling", "backlog_throughput_vs_ceiling", "p99_at_1000_ms", "max_at_1000_ms"} <= set(ratios)
    assert (tmp_path / "throughput.md").read_text().startswith("| run (median of 1")

"""Failover: how long the hot standby takes to lead after the leader is killed with SIGKILL.

    python -m bench.failover [--runs 20] [--tasks 1500] [--kills 2] [--lease-ttl-ms 1000]

Runs the same seeded harness as tests/faults/test_failover.py (tests/support/failover.py): per run
a recorder, `kills + 1` worker processes, a steady dispatcher and a simulated fleet on a fresh key
prefix of the real Redis; the leader is killed at seeded random points, and after the run every
invariant is checked (each task assigned exactly once or still waiting, no slot holding two tasks,
every decision in SQL exactly once). Takeover is measured from the SIGKILL to the standby holding
the lease, and to the first decision it writes. Results: bench/results/failover.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).parent / "results"
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from support.failover import FailoverRun, RunResult, percentile  # noqa: E402


def _stats(values: list[float]) -> dict[str, float]:
    return {
        "p50": round(percentile(values, 0.5), 3),
        "p90": round(percentile(values, 0.9), 3),
        "max": round(max(values), 3),
        "mean": round(statistics.fmean(values), 3),
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--redis-url", default=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))
    p.add_argument("--runs", type=int, default=20)
    p.add_argument("--first-seed", type=int, default=0)
    p.add_argument("--tasks", type=int, default=1500)
    p.add_argument("--rate", type=float, default=700.0, help="tasks published per second")
    p.add_argument("--kills", type=int, default=2, help="leader kills per run")
    p.add_argument("--lease-ttl-ms", type=int, default=1000)
    p.add_argument("--out", type=Path, default=RESULTS / "failover.json")
    args = p.parse_args()

    results: list[RunResult] = []
    with tempfile.TemporaryDirectory(prefix="failover-bench-") as tmp:
        for seed in range(args.first_seed, args.first_seed + args.runs):
            run = FailoverRun(
                seed=seed,
                redis_url=args.redis_url,
                workdir=Path(tmp) / f"run-{seed}",
                tasks=args.tasks,
                rate=args.rate,
                kills=args.kills,
                lease_ttl_ms=args.lease_ttl_ms,
            )
            result = run.run()
            results.append(result)
            times = ", ".join(f"{t.lease_s:.3f}s/{t.decision_s:.3f}s" for t in result.takeovers)
            status = "ok" if not result.problems else f"BROKEN: {result.problems[:3]}"
            print(
                f"seed {seed}: {result.events} events, takeovers (lease/first decision) {times}: {status}", flush=True
            )

    takeovers = [t for r in results for t in r.takeovers]
    doc: dict[str, Any] = {
        "runs": len(results),
        "events": sum(r.events for r in results),
        "decisions": sum(r.decisions for r in results),
        "kills": len(takeovers),
        "lease_ttl_ms": args.lease_ttl_ms,
        "takeover_lease_s": _stats([t.lease_s for t in takeovers]),
        "takeover_first_decision_s": _stats([t.decision_s for t in takeovers]),
        "runs_with_broken_invariants": sum(1 for r in results if r.problems),
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform()},
        "per_run": [
            {
                "seed": r.seed,
                "events": r.events,
                "decisions": r.decisions,
                "seconds": round(r.seconds, 2),
                "takeovers": [
                    {"lease_s": round(t.lease_s, 3), "decision_s": round(t.decision_s, 3)} for t in r.takeovers
                ],
                "problems": r.problems,
            }
            for r in results
        ],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=2) + "\n")
    print(json.dumps({k: v for k, v in doc.items() if k not in ("per_run", "machine")}, indent=2))
    return 1 if doc["runs_with_broken_invariants"] else 0


if __name__ == "__main__":
    sys.exit(main())

"""Primary failover: seeded runs with a replica behind a 200 ms link, the primary killed with
SIGKILL mid-stream and the replica promoted, with ROUTER_MIN_REPLICAS=1 and, beside it, 0.

    python -m bench.failover_replica [--runs 20] [--tasks 300] [--rate 400]

The harness is tests/support/replica_failover.py (the same as tests/faults/test_replica_failover.py):
a worker and a recorder, a durable dispatcher publishing at `rate` tasks/s and a fleet of 8 slots,
all through a front relay that follows the promotion. Per run: tasks received by two slots, tasks
the durable publish acknowledged and the new primary lost, decisions stored twice, missing from
SQL or in SQL though the new primary never made them, and the time from the kill to routing on
the new primary. Results: bench/results/failover_replica.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).parent / "results"
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from support.failover import percentile  # noqa: E402
from support.replica_failover import ReplicaRunResult, run_replica_failover  # noqa: E402

COUNTED = ("two_slots", "lost", "sql_duplicates", "sql_missing", "sql_orphans", "republished")


def summary(runs: list[ReplicaRunResult]) -> dict[str, Any]:
    resumed = [run.resumed_s for run in runs]
    out: dict[str, Any] = {name: sum(getattr(run, name) for run in runs) for name in COUNTED}
    out["runs"] = len(runs)
    out["runs_with_problems"] = sum(bool(run.problems) for run in runs)
    out["resumed_s"] = {"p50": round(percentile(resumed, 0.5), 3), "max": round(max(resumed), 3)}
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--tasks", type=int, default=300)
    parser.add_argument("--rate", type=float, default=400.0)
    parser.add_argument(
        "--min-replicas", default="1,0", help="the settings run, in order (their earlier results are kept)"
    )
    args = parser.parse_args()
    out = RESULTS / "failover_replica.json"
    by_setting: dict[str, Any] = json.loads(out.read_text()) if out.exists() else {}
    for min_replicas in [int(n) for n in args.min_replicas.split(",")]:
        runs = []
        for seed in range(args.runs):
            with tempfile.TemporaryDirectory() as workdir:
                run = run_replica_failover(
                    seed=seed, workdir=Path(workdir), min_replicas=min_replicas, tasks=args.tasks, rate=args.rate
                )
            print(asdict(run), flush=True)
            runs.append(run)
        by_setting[f"min_replicas={min_replicas}"] = {"summary": summary(runs), "runs": [asdict(r) for r in runs]}
        print(f"ROUTER_MIN_REPLICAS={min_replicas}:", summary(runs), flush=True)
    RESULTS.mkdir(exist_ok=True)
    doc = {**by_setting, "machine": platform.platform(), "tasks": args.tasks, "rate": args.rate, "lag_s": 0.2}
    out.write_text(json.dumps(doc, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

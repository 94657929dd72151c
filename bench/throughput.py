"""Throughput and latency of a real `router worker` against the ceiling harness, on the real Redis.

    python -m bench.throughput [--workload mixed|uniform] [--repeats 5] [--seconds 6] [--burst 40000]
                               [--seed 1] [--outcomes] [--quick]

Workloads (bench/workload.py): `mixed`, the default, is a router in use (7 models on 2 accounts,
600 slots, varied tasks, a standing backlog of about 3,000 waiting, heartbeats, cancellations,
quota updates, usage reports); `uniform` the easiest case (512 haiku slots, identical tasks, pairs
of task.pending and slot.free). The worker runs at its default settings, log level included.
Loads: 1,000 and 5,000 events/s offered; saturation (a burst of `--burst` events sent as the
consumer reads, so on a small machine the driver competes with it for the cores); and a backlog
(the same burst sent while the consumer is stopped, then drained: its capacity with nothing else
running). Each run starts a fresh worker (or ceiling consumer) with its own key prefix, so runs
never share state; every key is deleted afterwards. Results: bench/results/throughput.json and .md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
from pathlib import Path
from typing import Any

from bench.compiled import ensure_compiled
from bench.harness import COMPILED, Bench, RunResult
from bench.replica import primary_with_replica
from bench.workload import MIXED, WORKLOADS, make

RESULTS = Path(__file__).parent / "results"


SATURATION = "saturation"  # a burst sent while the consumer reads: the driver competes for the cores
BACKLOG = "backlog"  # the same burst sent while the consumer is stopped, then drained
_THROUGHPUT_RATIOS = ((SATURATION, "throughput_vs_ceiling"), (BACKLOG, "backlog_throughput_vs_ceiling"))


def one(
    kind: str, redis_url: str, load: float | str, seconds: float, burst: int, args: argparse.Namespace
) -> RunResult:
    workload = make(args.workload, seed=args.seed, outcomes=args.outcomes)
    with Bench(kind=kind, redis_url=redis_url, workload=workload) as bench:
        if load == SATURATION:
            bench.burst(burst)
            return bench.result(None)
        if load == BACKLOG:
            return bench.result(None, released_ms=bench.backlog(burst))
        assert isinstance(load, float)
        bench.offered(load, seconds)
        return bench.result(load)


def summary(runs: list[RunResult], key: str) -> dict[str, float]:
    values = [float(getattr(r, key)) for r in runs]
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--redis-url", default=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))
    p.add_argument("--workload", choices=WORKLOADS, default=MIXED)
    p.add_argument("--seed", type=int, default=1, help="the workload's random seed (the same in every run)")
    p.add_argument(
        "--outcomes", action="store_true", help="usage reports carry an outcome (PROTOCOL v1.1 task outcomes)"
    )
    p.add_argument("--quick", action="store_true", help="one short run of each: checks the command, measures nothing")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--seconds", type=float, default=6.0, help="length of each fixed-load run")
    p.add_argument("--burst", type=int, default=40_000, help="events sent at once for the saturation runs")
    p.add_argument("--out", type=Path, default=RESULTS / "throughput.json")
    p.add_argument("--no-compiled", action="store_true", help="leave out the mypyc-compiled worker")
    p.add_argument(
        "--replica", action="store_true", help="run on a primary with a replica started here (bench/replica.py)"
    )
    p.add_argument("--min-replicas", type=int, default=0, help="with --replica: ROUTER_MIN_REPLICAS for the workers")
    args = p.parse_args()
    if args.quick:
        args.repeats, args.seconds, args.burst = 1, 1.0, 2_000
    if args.repeats < 1 or args.seconds <= 0 or args.burst < 2:
        p.error("--repeats must be >= 1, --seconds > 0 and --burst >= 2")
    if args.replica:
        with primary_with_replica(args.min_replicas) as url:
            args.redis_url = url
            return run(args)
    return run(args)


def run(args: argparse.Namespace) -> int:
    loads: list[float | str] = [1000.0, 5000.0, SATURATION, BACKLOG]
    kinds = ["ceiling", "router"]
    if not args.no_compiled:
        try:
            print(f"compiled build: {ensure_compiled()}", flush=True)
            kinds.append(COMPILED)
        except RuntimeError as exc:  # no C compiler, say: the pure-Python rows still stand
            print(f"compiled build unavailable, its rows are left out: {exc}", flush=True)
    runs: dict[str, list[RunResult]] = {}
    for repeat in range(args.repeats):
        for rate in loads:
            for kind in kinds:  # interleaved, so machine noise hits every kind alike
                result = one(kind, args.redis_url, rate, args.seconds, args.burst, args)
                runs.setdefault(f"{kind}@{rate}", []).append(result)
                print(f"run {repeat + 1}: {kind:7} offered {rate}: {result.to_json()}", flush=True)
    table: dict[str, Any] = {}
    for name, results in runs.items():
        table[name] = {k: summary(results, k) for k in ("achieved_eps", "p50_ms", "p99_ms", "max_ms")}
        table[name]["lost"] = sum(r.lost for r in results)
        table[name]["waiting_at_end"] = summary(results, "waiting")
    ratios = {kind: _ratios(table, runs, kind) for kind in kinds if kind != "ceiling"}
    doc = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "load_average": os.getloadavg(),
        "workload": args.workload,
        "seed": args.seed,
        "outcomes": args.outcomes,
        "repeats": args.repeats,
        "seconds": args.seconds,
        "replica": args.replica,
        "min_replicas": args.min_replicas if args.replica else None,
        "burst_events": args.burst,
        "summary": table,
        "ratios": ratios,
        "goals": {
            "throughput_vs_ceiling": ">= 0.5 compiled, >= 0.3 interpreted",
            "p99_at_1000_vs_ceiling": "<= 2.0, or p99 <= 2 ms where the ceiling's is 1 ms",
            "max_at_1000_ms": "<= 25",
        },
        "kinds": {
            "ceiling": "bench/ceiling.py: read, one output per entry, acknowledge (pipelined)",
            "router": "router worker, interpreted (an editable install or ROUTER_COMPILE=0)",
            COMPILED: "router worker as a regular install builds it: router/ and streams/ compiled by mypyc",
        },
        "runs": {k: [r.to_json() for r in v] for k, v in runs.items()},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=2) + "\n")
    md = markdown(table, ratios, args.repeats)
    args.out.with_suffix(".md").write_text(md)
    print(md)
    return 0


def _ratios(table: dict[str, Any], runs: dict[str, list[RunResult]], kind: str) -> dict[str, Any]:
    """The goals' ratios of the medians; and the throughput ratios run by run (each run beside the
    ceiling run just before it, seconds apart), whose median a machine whose speed drifts over the
    minutes of a session moves less. Throughput both at saturation (the driver sending as the
    consumer reads) and draining a backlog (sent before the consumer was let go)."""
    out: dict[str, Any] = {
        "p99_at_1000_vs_ceiling": table[f"{kind}@1000.0"]["p99_ms"]["median"]
        / max(table["ceiling@1000.0"]["p99_ms"]["median"], 1.0),
        "p99_at_1000_ms": table[f"{kind}@1000.0"]["p99_ms"]["median"],
        "max_at_1000_ms": table[f"{kind}@1000.0"].get("max_ms", {}).get("median"),
    }
    for load, name in _THROUGHPUT_RATIOS:
        if f"{kind}@{load}" not in runs or f"ceiling@{load}" not in runs:
            continue
        out[name] = (
            table[f"{kind}@{load}"]["achieved_eps"]["median"] / table[f"ceiling@{load}"]["achieved_eps"]["median"]
        )
        paired = [
            mine.achieved_eps / ceiling.achieved_eps
            for mine, ceiling in zip(runs[f"{kind}@{load}"], runs[f"ceiling@{load}"], strict=True)
        ]
        out[f"{name}_paired"] = {
            "median": statistics.median(paired),
            "min": min(paired),
            "max": max(paired),
            "by_run": [round(x, 3) for x in paired],
        }
    return out


def markdown(table: dict[str, Any], ratios: dict[str, dict[str, Any]], repeats: int) -> str:
    lines = [
        f"| run (median of {repeats}, [min-max]) | events/s | p50 ms | p99 ms | max ms | lost |",
        "|---|---|---|---|---|---|",
    ]
    for name, row in table.items():
        cells = [
            f"{row[k]['median']:.1f} [{row[k]['min']:.1f}-{row[k]['max']:.1f}]"
            for k in ("achieved_eps", "p50_ms", "p99_ms", "max_ms")
            if k in row
        ]
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {row.get('lost', 0)} |")
    lines.append("")
    for kind, ratio in ratios.items():
        for load, name in _THROUGHPUT_RATIOS:
            if name not in ratio:
                continue
            paired = ratio[f"{name}_paired"]
            lines.append(
                f"{kind} throughput / ceiling throughput, {load}: {ratio[name]:.2f} (goal >= 0.5); "
                f"run by run {paired['median']:.2f} [{paired['min']:.2f}-{paired['max']:.2f}]"
            )
        lines.append(
            f"{kind} p99 / ceiling p99 at 1,000 events/s: {ratio['p99_at_1000_vs_ceiling']:.2f} (goal <= 2, or <= 2 ms"
            f" where the ceiling's is 1 ms: {ratio['p99_at_1000_ms']:.0f} ms); max"
            f" {ratio['max_at_1000_ms'] or float('nan'):.0f} ms (goal <= 25)"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())

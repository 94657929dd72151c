"""Scaling of the router's own work (no Redis): cost per event of Router.apply + match with many
tasks awaiting and many slots, and memory per awaiting task (tracemalloc).

    python -m bench.scaling [--workload mixed|uniform] [--events 2000] [--repeats 9]

Each case builds a Router with S slots all busy and W tasks awaiting, then times
E measured events in batches of 16: a slot.free (the slot goes to the best waiting task) and a new
task.pending, so the waiting count and the free count stay as set up, after one untimed pass of E
events (the first events after a build pay one-off costs). Workloads: `mixed` (the default) has
the slots on bench.throughput's 7 models and 2 accounts and tasks with its varied requirements
(bar the unroutable ones, which never wait), EVs and priorities; `uniform` haiku/sonnet/opus slots
and requirements every model meets. Results: bench/results/scaling.json and .md (`uniform`:
scaling-uniform.json and .md).

Every case lives in a process of its own (so each pays the garbage collection of its own heap and
no other's), and the repeats go round the cases in turn: repeat r of every case runs within a few
seconds of repeat r of the others. On a shared machine whose speed moves by half within minutes,
that pairs the cases' timings, so the ratio of the largest case to the smallest is taken within
each round and the median of those ratios is the figure quoted (the ratio of the medians is kept
beside it).
"""

from __future__ import annotations

import argparse
import itertools
import json
import multiprocessing
import os
import random
import statistics
import time
import tracemalloc
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from bench import workload
from router.catalog import load_catalog
from router.engine import Router
from router.values import SlotFree, Task, TaskPending

RESULTS = Path(__file__).parent / "results"
# uniform: requirements every model of the packaged catalogue meets, so each freed slot, whatever its
# model, goes to a waiting task and each new task waits: the awaiting count stays where it was set
UNIFORM_POOLS: tuple[tuple[str, str], ...] = (("haiku", "default"), ("sonnet", "default"), ("opus", "default"))
UNIFORM_REQUIRES: tuple[dict[str, int], ...] = ({}, {"coding": 5}, {"writing": 5}, {"safety": 5})
# the mixed fleet's 14 pools with the tiers taken in turn, so that the first few (the 10-slot
# cases) hold every tier: with no premium slot, the tasks only premium meets would pile up until
# no slot is ever busy again
_TIERS = (("haiku", "minimax", "glm"), ("sonnet", "codex"), ("opus", "gpt-5"))
MIXED_POOLS = tuple(
    pool
    for pools in itertools.zip_longest(
        *[[(model, account) for model in tier for account in workload.ACCOUNTS] for tier in _TIERS]
    )
    for pool in pools
    if pool is not None
)
MIXED_REQUIRES = tuple((r, w) for r, w in workload.REQUIRES if r != {"coding": 10, "reasoning": 10})
BATCH = 16
_RUNS = itertools.count()


def _task(rng: random.Random, n: int, kind: str) -> TaskPending:
    if kind == workload.UNIFORM:
        task = Task(
            task_id=f"w{n}", priority=rng.randrange(10, 100), requires=rng.choice(UNIFORM_REQUIRES), ev=rng.random()
        )
    else:
        requires = rng.choices([r for r, _ in MIXED_REQUIRES], weights=[w for _, w in MIXED_REQUIRES])[0]
        priority = rng.choice((10, 20, 30, 40, 50, 50, 60, 70, 80, 90, 95))
        task = Task(
            task_id=f"w{n}", priority=priority, requires=dict(requires), ev=round(rng.lognormvariate(0.0, 0.8), 3)
        )
    return TaskPending(task=task)


def build(
    waiting: int, slots: int, seed: int = 1, kind: str = workload.MIXED
) -> tuple[Router, random.Random, list[str]]:
    rng = random.Random(seed)
    router = Router(load_catalog())
    slot_ids = [f"s{i:05d}" for i in range(slots)]
    pools = UNIFORM_POOLS if kind == workload.UNIFORM else MIXED_POOLS
    router.begin_batch("0-0")
    for i, slot_id in enumerate(slot_ids):
        model, account = pools[i % len(pools)]
        router.apply(SlotFree(slot_id=slot_id, model=model, account=account), event_id="0-0", now_ms=0)
    for n in range(slots + waiting):  # the first `slots` tasks fill every slot, the rest wait
        router.apply(_task(rng, n, kind), event_id="0-0", now_ms=0)
    router.match(now_ms=0)
    return router, rng, slot_ids


def time_events(router: Router, rng: random.Random, events: int, kind: str = workload.MIXED) -> float:
    """Seconds per event over `events` events (half slot.free, half task.pending)."""
    n = 10_000_000 + 1_000_000 * _RUNS.__next__()  # fresh ids per run: a re-used id counts as already assigned
    pools = list(router.ledger.pools.values())
    sent = 0
    start = time.perf_counter()
    now = 1000
    for b in range(events // (2 * BATCH)):
        router.begin_batch(f"{now}-{b}")
        for _ in range(BATCH):
            busy_pools = [p for p in pools if p.busy]  # a handful of pools: one per model
            if not busy_pools:
                break  # every slot freed in this batch already (the 10-slot cases)
            pool = busy_pools[rng.randrange(len(busy_pools))]
            slot_id = pool.busy[rng.randrange(len(pool.busy))]
            record = router.ledger.slots[slot_id]
            router.apply(
                SlotFree(slot_id=slot_id, model=record.model, account=record.account), event_id="e", now_ms=now
            )
            sent += 2
            n += 1
            router.apply(_task(rng, n, kind), event_id="e", now_ms=now)
        router.match(now_ms=now)
        router.drain_changes()
        now += 5
    return (time.perf_counter() - start) / max(sent, 1)


def _serve_case(conn: Connection, waiting: int, slots: int, events: int, kind: str) -> None:
    """In a process of its own: build one case, then time `events` events whenever asked."""
    router, rng, _ = build(waiting, slots, kind=kind)
    # one pass untimed: the first events after a build pay one-off costs (the collector walking
    # everything the build allocated, the premium list catching up with P50)
    time_events(router, rng, events, kind)
    conn.send(len(router.waiting))  # ready
    while conn.recv():
        conn.send(time_events(router, rng, events, kind) * 1e6)
    conn.send(len(router.waiting))


def _timed_in_turn(
    sizes: list[tuple[int, int]], *, events: int, repeats: int, kind: str
) -> list[tuple[list[float], int]]:
    """For each (waiting, slots) case, its µs per event in each of `repeats` rounds (every round
    times every case once, one at a time) and its waiting count at the end."""
    context = multiprocessing.get_context("spawn")
    links, procs = [], []
    for waiting, slots in sizes:
        parent, child = context.Pipe()
        proc = context.Process(target=_serve_case, args=(child, waiting, slots, events, kind), daemon=True)
        proc.start()
        links.append(parent)
        procs.append(proc)
    try:
        for link in links:
            link.recv()  # built and warmed up
        timings: list[list[float]] = [[] for _ in sizes]
        for _ in range(repeats):
            for link, found in zip(links, timings, strict=True):
                link.send(True)
                found.append(link.recv())
        after = []
        for link in links:
            link.send(False)
            after.append(link.recv())
        return list(zip(timings, after, strict=True))
    finally:
        for proc in procs:
            proc.join(timeout=30)
            if proc.is_alive():
                proc.kill()


def memory_per_waiting(tasks: int = 20_000, kind: str = workload.MIXED) -> float:
    """Bytes per awaiting task, as tracemalloc sees them (the Task values, the index and the ledger)."""
    router, _, _ = build(0, 10, kind=kind)
    rng = random.Random(2)
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    router.begin_batch("1-0")
    for n in range(tasks):
        router.apply(_task(rng, 10_000 + n, kind), event_id="1-0", now_ms=1)
    router.match(now_ms=1)
    router.drain_changes()
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    grown = sum(stat.size_diff for stat in after.compare_to(before, "filename"))
    return grown / tasks


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workload", choices=workload.WORKLOADS, default=workload.MIXED)
    p.add_argument("--events", type=int, default=2000)
    p.add_argument("--repeats", type=int, default=9)
    p.add_argument("--out", type=Path, default=None, help="default: results/scaling.json (uniform: scaling-uniform)")
    args = p.parse_args()
    if args.events < 2 * BATCH or args.repeats < 1:
        p.error(f"--events must be at least {2 * BATCH} and --repeats at least 1")
    out = args.out or RESULTS / ("scaling-uniform.json" if args.workload == workload.UNIFORM else "scaling.json")
    sizes = [(waiting, slots) for waiting in (100, 10_000, 100_000) for slots in (10, 1_000, 5_000)]
    runs = _timed_in_turn(sizes, events=args.events, repeats=args.repeats, kind=args.workload)
    cases: list[dict[str, Any]] = []
    for (waiting, slots), (timings, waiting_after) in zip(sizes, runs, strict=True):
        case = {
            "waiting": waiting,
            "slots": slots,
            "us_per_event": statistics.median(timings),
            "min": min(timings),
            "max": max(timings),
            "runs": timings,
            "waiting_after": waiting_after,
        }
        cases.append(case)
        print(case, flush=True)
    smallest = cases[0]
    largest = next(c for c in cases if c["waiting"] == 100_000 and c["slots"] == 5_000)
    paired = [big / small for big, small in zip(largest["runs"], smallest["runs"], strict=True)]
    doc = {
        "machine": {"cpus": os.cpu_count()},
        "load_average": os.getloadavg(),
        "workload": args.workload,
        "events_per_case": args.events,
        "cases": cases,
        "largest_vs_smallest": statistics.median(paired),
        "largest_vs_smallest_by_round": paired,
        "largest_vs_smallest_of_medians": largest["us_per_event"] / smallest["us_per_event"],
        "bytes_per_waiting_task": memory_per_waiting(kind=args.workload),
        "goals": {"largest_vs_smallest": "<= 2", "bytes_per_waiting_task": "<= 2048"},
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=2) + "\n")
    lines = ["| awaiting | slots | µs per event (median [min-max]) |", "|---|---|---|"]
    lines += [
        f"| {c['waiting']:,} | {c['slots']:,} | {c['us_per_event']:.1f} [{c['min']:.1f}-{c['max']:.1f}] |"
        for c in cases
    ]
    lines += [
        "",
        f"100,000 awaiting and 5,000 slots / smallest case: {doc['largest_vs_smallest']:.2f} (goal <= 2; median"
        f" of the {len(paired)} rounds' ratios, [{min(paired):.2f}-{max(paired):.2f}]; ratio of the medians"
        f" {doc['largest_vs_smallest_of_medians']:.2f})",
        f"memory per awaiting task: {doc['bytes_per_waiting_task']:.0f} bytes (goal <= 2048)",
    ]
    md = "\n".join(lines) + "\n"
    out.with_suffix(".md").write_text(md)
    print(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

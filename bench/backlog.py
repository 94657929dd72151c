"""How fast one worker drains a backlog, measured inside the worker's own process.

    python -m bench.backlog [--workload mixed|uniform] [--events 60000] [--repeats 3] [--compiled]

A workload of bench.throughput (bench/workload.py; `mixed` by default), its slots registered and
its warm-up tasks routed first, then its measured events written to the stream by a separate
process and drained by a `RoutingWorker` running its loop (`turn()`) in this process, at its
default settings. Without a driver process competing for the two cores and without subprocess
start-up, this is the steadier instrument for comparing two versions of the code (run it with
each on PYTHONPATH in turn, alternating; `--compiled` puts the mypyc build of bench.compiled
first); it reports events/s and the worker's CPU time per event, and whether the routing ran
compiled. As in bench.throughput's backlog runs, a freed slot reports as `completed` the task it
held when the backlog was written, the first time it is freed. Nothing is written to bench/results.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import json
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from typing import Any

import orjson
import redis

from bench.compiled import ensure_compiled
from bench.workload import MIXED, WORKLOADS, Workload, make

# run as a separate process (valgrind counts only the worker's): writes the measured events
_LOAD = """
import json, sys, orjson, redis
from bench.workload import make
stream, url, name, seed, events, outcomes, holders_path = sys.argv[1:8]
workload = make(name, seed=int(seed), outcomes=outcomes == "1")
workload.warm_up()  # the same random draws and task numbers as the worker's warm-up
holders = json.load(open(holders_path))
r = redis.Redis.from_url(url)
pipe = r.pipeline(transaction=False)
for i, doc in enumerate(workload.measured(int(events))):
    if doc["type"] == "slot.free" and doc["slot_id"] in holders:
        doc["completed"] = workload.completed(holders.pop(doc["slot_id"]))
    pipe.xadd(stream, {"data": orjson.dumps(doc)})
    if i % 2000 == 1999:
        pipe.execute()
pipe.execute()
"""


def _publish(r: redis.Redis, stream: str, docs: list[dict[str, Any]]) -> None:
    pipe = r.pipeline(transaction=False)
    for doc in docs:
        pipe.xadd(stream, {"data": orjson.dumps(doc)})
    pipe.execute()


def drain_once(redis_url: str, workload: Workload, events: int) -> tuple[float, float]:
    """Events/s and CPU µs per event for one worker draining `events` events."""
    # imported here, after main() has chosen where router/ and streams/ come from
    from worker.routing import RoutingWorker
    from worker.settings import Settings
    from worker.signals import StopFlag

    r = redis.Redis.from_url(redis_url)
    prefix = f"bench:{uuid.uuid4().hex[:10]}:"
    stream = f"{prefix}events"
    settings = Settings(redis_url=redis_url, prefix=prefix, consumer="backlog")
    worker = RoutingWorker(settings, redis.Redis.from_url(redis_url), stop=StopFlag())
    try:
        warm = [*workload.registrations(), *workload.warm_up()]
        _publish(r, stream, warm)
        while worker.processed < len(warm):
            worker.turn()
        worker.turn()  # collects the last step
        assert worker.router is not None
        slots = worker.router.ledger.slots
        holders = {slot_id: record.task_id for slot_id, record in slots.items() if record.task_id is not None}
        with tempfile.NamedTemporaryFile("w", suffix=".json") as held:
            json.dump(holders, held)
            held.flush()
            argv = [stream, redis_url, workload.name, str(workload.seed), str(events), str(int(workload.outcomes))]
            subprocess.run([sys.executable, "-c", _LOAD, *argv, held.name], check=True)
        done = worker.processed + events
        start, cpu = time.perf_counter(), time.process_time()
        while worker.processed < done:
            worker.turn()
        wall, cpu = time.perf_counter() - start, time.process_time() - cpu
        return events / wall, cpu / events * 1e6
    finally:
        for key in r.scan_iter(match=f"{prefix}*", count=1000):
            r.delete(key)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    p.add_argument("--workload", choices=WORKLOADS, default=MIXED)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--outcomes", action="store_true", help="usage reports carry an outcome (PROTOCOL v1.1)")
    p.add_argument("--events", type=int, default=60_000)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--compiled", action="store_true", help="run router/ and streams/ compiled by mypyc")
    p.add_argument("--log-level", default="info", help="the worker's log level (default: the worker's default)")
    args = p.parse_args()
    if args.events < 1 or args.repeats < 1:
        p.error("--events and --repeats must be positive")
    if args.compiled:
        sys.path.insert(0, str(ensure_compiled()))
    routing = importlib.import_module("worker.routing")  # after the path is set
    logs = importlib.import_module("worker.logs")
    logs.configure(args.log_level)  # the worker's log set-up, as `router worker` makes it
    gc.set_threshold(routing.GC_YOUNG_THRESHOLD, 20, 100)  # as the worker's run loop sets it
    runs = [
        drain_once(args.redis_url, make(args.workload, seed=args.seed, outcomes=args.outcomes), args.events)
        for _ in range(args.repeats)
    ]
    rates = [rate for rate, _ in runs]
    cpus = [cpu for _, cpu in runs]
    print(
        f"compiled={routing.routing_is_compiled()} workload={args.workload} events/s median "
        f"{statistics.median(rates):,.0f} [{min(rates):,.0f}-{max(rates):,.0f}]; "
        f"worker CPU per event median {statistics.median(cpus):.1f} µs"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""How fast one worker drains a backlog, measured inside the worker's own process.

    python -m bench.backlog [--pairs 30000] [--repeats 3] [--compiled]

The same workload as bench.throughput's saturation run (512 haiku slots; pairs of task.pending and
slot.free for a busy slot), but written to the stream before the worker starts reading, by a
separate process, and drained by a `RoutingWorker` running its loop (`turn()`) in this process.
Without a driver process competing for the two cores and without subprocess start-up, this is
the steadier instrument for comparing two versions of the code (run it with each on PYTHONPATH in
turn, alternating; `--compiled` puts the mypyc build of bench.compiled first); it reports events/s
and the worker's CPU time per event, and whether the routing ran compiled. Nothing is written to
bench/results.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import logging
import statistics
import subprocess
import sys
import time
import uuid

import orjson
import redis
import structlog

from bench.compiled import ensure_compiled

SLOTS = 512
_LOAD = """
import sys, orjson, redis
stream, url, pairs, first, slots = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
r = redis.Redis.from_url(url)
pipe = r.pipeline(transaction=False)
for i in range(pairs):
    task = {"type": "task.pending", "task_id": f"t{first + i}", "priority": 50, "requires": {}, "layer": "chore"}
    pipe.xadd(stream, {"data": orjson.dumps(task)})
    free = {"type": "slot.free", "slot_id": f"s{i % slots:04d}", "model": "haiku"}
    pipe.xadd(stream, {"data": orjson.dumps(free)})
    if i % 2000 == 1999:
        pipe.execute()
pipe.execute()
"""


def _publish(r: redis.Redis, stream: str, docs: list[dict[str, object]]) -> None:
    pipe = r.pipeline(transaction=False)
    for doc in docs:
        pipe.xadd(stream, {"data": orjson.dumps(doc)})
    pipe.execute()


def drain_once(redis_url: str, pairs: int) -> tuple[float, float]:
    """Events/s and CPU µs per event for one worker draining `pairs` pairs."""
    # imported here, after main() has chosen where router/ and streams/ come from
    from worker.routing import RoutingWorker
    from worker.settings import Settings
    from worker.signals import StopFlag

    r = redis.Redis.from_url(redis_url)
    prefix = f"bench:{uuid.uuid4().hex[:10]}:"
    stream = f"{prefix}events"
    settings = Settings(redis_url=redis_url, prefix=prefix, consumer="backlog", log_level="warning")
    worker = RoutingWorker(settings, redis.Redis.from_url(redis_url), stop=StopFlag())
    try:
        # warm-up: every slot registers and takes one task, so the measured pairs free busy slots
        _publish(r, stream, [{"type": "slot.free", "slot_id": f"s{i:04d}", "model": "haiku"} for i in range(SLOTS)])
        warm = [{"type": "task.pending", "task_id": f"w{i}", "priority": 50, "requires": {}} for i in range(SLOTS)]
        _publish(r, stream, warm)
        while worker.processed < 2 * SLOTS:
            worker.turn()
        worker.turn()  # collects the last step
        subprocess.run([sys.executable, "-c", _LOAD, stream, redis_url, str(pairs), "1", str(SLOTS)], check=True)
        done = worker.processed + 2 * pairs
        start, cpu = time.perf_counter(), time.process_time()
        while worker.processed < done:
            worker.turn()
        wall, cpu = time.perf_counter() - start, time.process_time() - cpu
        return 2 * pairs / wall, cpu / (2 * pairs) * 1e6
    finally:
        for key in r.scan_iter(match=f"{prefix}*", count=1000):
            r.delete(key)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    p.add_argument("--pairs", type=int, default=30_000)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--compiled", action="store_true", help="run router/ and streams/ compiled by mypyc")
    args = p.parse_args()
    if args.compiled:
        sys.path.insert(0, str(ensure_compiled()))
    routing = importlib.import_module("worker.routing")  # after the path is set
    gc.set_threshold(routing.GC_YOUNG_THRESHOLD, 20, 100)  # as the worker's run loop sets it
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    runs = [drain_once(args.redis_url, args.pairs) for _ in range(args.repeats)]
    rates = [rate for rate, _ in runs]
    cpus = [cpu for _, cpu in runs]
    print(
        f"compiled={routing.routing_is_compiled()} events/s median {statistics.median(rates):,.0f} "
        f"[{min(rates):,.0f}-{max(rates):,.0f}]; worker CPU per event median {statistics.median(cpus):.1f} µs"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

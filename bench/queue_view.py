"""Cost of the read side's queue view (dashboard/queue.py): rebuilding a Router from the ledger
snapshot in Redis and asking it every waiting task's place, with 10,000 and 100,000 tasks waiting.

    python -m bench.queue_view [--redis-url redis://127.0.0.1:6379/0] [--repeats 5]

Each case builds its ledger as bench/scaling.py does (W tasks waiting behind 5,000 busy slots of
three models, four requirement sets), runs a few hundred events so that service times are
measured (every ETA is a number), writes the snapshot under a key prefix of its own, then times
the MULTI read, queue_places alone, the whole rebuild as a process's QueueView does it (garbage
collector paused) and with the collector running, and for comparison the page's own read of the
waiting tasks (dashboard/live.py). For the compiled routing a regular install runs, put
`build/compiled` (python -m bench.compiled) first on PYTHONPATH and run from outside the checkout.
Medians of `--repeats`; the keys are deleted afterwards. Results: bench/results/queue_view.json and .md.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import redis

from bench.scaling import build, time_events
from dashboard.live import read_live
from dashboard.queue import QueueView, read_router, snapshot_loader
from router.catalog import load_catalog
from router.config import RouterConfig
from router.engine import Router
from router.snapshot import waiting_to_json
from streams.codec import encode
from streams.keys import Keys

RESULTS = Path(__file__).parent / "results"
SLOTS = 5_000
CHUNK = 5_000


def write_snapshot(r: redis.Redis, keys: Keys, router: Router) -> None:
    """The router's whole ledger, in the form the worker's atomic steps leave it in Redis."""
    state = keys.state(dry_run=False)
    writes: list[tuple[str, str, bytes]] = [
        (state.slots, k, encode(v.to_json())) for k, v in router.ledger.slots.items()
    ]
    writes += [(state.waiting, k, encode(waiting_to_json(w))) for k, w in router.waiting.tasks.items()]
    writes += [(state.rates, k, encode(v)) for k, v in router.rates.snapshot().items()]
    for start in range(0, len(writes), CHUNK):
        pipe = r.pipeline(transaction=False)
        for key, field, value in writes[start : start + CHUNK]:
            pipe.hset(key, field, value)
        pipe.execute()
    r.rpush(state.ev_window, *[repr(w.ev) for w in list(router.waiting.tasks.values())[-router.config.ev_window :]])


def _median_s(action: Callable[[], Any], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def measure(r: redis.Redis, waiting: int, repeats: int) -> dict[str, Any]:
    router, rng, _ = build(waiting, SLOTS)
    time_events(router, rng, 400)  # slots free up and are taken again: service times measured
    keys = Keys(f"bench-queue-{uuid.uuid4().hex[:8]}:")
    catalog, config = load_catalog(), RouterConfig()
    write_snapshot(r, keys, router)
    try:
        state = keys.state(dry_run=False)

        def read_only() -> None:
            pipe = r.pipeline(transaction=True)
            pipe.hgetall(state.slots)
            pipe.hgetall(state.waiting)
            pipe.execute()

        rebuilt = read_router(r, keys, catalog, config)
        now_ms = 10_000
        places = rebuilt.queue_places(now_ms)
        load = snapshot_loader(r, keys, catalog, config)
        case = {
            "waiting": waiting,
            "slots": SLOTS,
            "placed": len(places),
            "with_eta": sum(1 for p in places.values() if p.eta_s is not None),
            "read_s": _median_s(read_only, repeats),
            "queue_places_s": _median_s(lambda: rebuilt.queue_places(now_ms), repeats),
            # as a process's queue view does it: read, restore, place every task, collector paused
            "rebuild_s": _median_s(lambda: QueueView(load).snapshot(), repeats),
            "rebuild_collector_running_s": _median_s(lambda: load().queue_places(now_ms), repeats),
            "page_live_read_s": _median_s(lambda: read_live(r, keys), repeats),
            "snapshot_bytes": int(sum(len(v) for v in r.hvals(state.waiting))),
        }
        case["reused_for_s"] = max(1.0, 2.0 * case["rebuild_s"])
        return case
    finally:
        for key in r.scan_iter(match=f"{keys.prefix}*", count=1000):
            r.delete(key)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--redis-url", default=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--out", type=Path, default=RESULTS / "queue_view.json")
    args = p.parse_args()
    r = redis.Redis.from_url(args.redis_url)
    cases = []
    for waiting in (10_000, 100_000):
        case = measure(r, waiting, args.repeats)
        cases.append(case)
        print(case, flush=True)
    doc = {
        "machine": {"cpus": os.cpu_count()},
        "repeats": args.repeats,
        "cases": cases,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=2) + "\n")
    lines = [
        "| waiting | snapshot read (MULTI) | queue_places | whole rebuild (as the view does it) |"
        " the same, collector running | fresh for | the page's own read of the waiting tasks |",
        "|---|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {c['waiting']:,} | {c['read_s'] * 1000:,.0f} ms | {c['queue_places_s'] * 1000:,.0f} ms"
        f" | {c['rebuild_s'] * 1000:,.0f} ms | {c['rebuild_collector_running_s'] * 1000:,.0f} ms"
        f" | {c['reused_for_s']:.1f} s | {c['page_live_read_s'] * 1000:,.0f} ms |"
        for c in cases
    ]
    args.out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

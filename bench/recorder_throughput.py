"""Recorder throughput into PostgreSQL: decisions recorded per second, by batch size.

Fills a fresh `{prefix}decisions` stream with synthetic decision records shaped like the
worker's, then times a Recorder draining it into its own PostgreSQL schema (created and dropped
here), from the first read to the last acknowledgement. Not a test: run it by hand.

    /tmp/venv/bin/python bench/recorder_throughput.py --decisions 100000 --batch 500 1000 2000
"""

from __future__ import annotations

import argparse
import time
import uuid
from typing import Any

import orjson
import redis
from sqlalchemy import create_engine, func, select, text

from router.catalog import load_catalog
from store.db import make_engine
from store.migrate import upgrade
from store.schema import decisions
from streams.keys import RECORDER_GROUP, Keys
from worker.logs import configure
from worker.recorder import Recorder
from worker.settings import Settings

POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def record(i: int, run: str) -> dict[str, Any]:
    assigned = i % 3 != 0
    return {
        "decision_id": f"{run}-{i}",
        "task_id": f"task-{i}",
        "outcome": "assigned" if assigned else "await_slot",
        "reason_code": "cheapest_capable" if assigned else "no_free_capable_slot",
        "reason": "cheapest capable tier: haiku (tier 1); EV 0.42 <= P90 0.91, priority 40",
        "chosen_slot_id": f"slot-{i % 50}" if assigned else None,
        "chosen_model": "haiku" if assigned else None,
        "chosen_tier": 1 if assigned else None,
        "account": "default" if assigned else None,
        "layer": ["chore", "build", "strategy"][i % 3],
        "priority": i % 101,
        "quest_priority": None,
        "title": f"task number {i}",
        "ev": (i % 100) / 100,
        "ev_p50": 0.5,
        "ev_p90": 0.9,
        "override": False,
        "min_tier": 1,
        "est_cost_usd": 0.0012,
        "decided_at": 1_700_000_000_000 + i,
        "dry_run": False,
        "event_id": f"1700000000000-{i}",
        "policy_version": "bench",
        "alternatives": [
            {"slot_id": f"slot-{i % 50}", "model": "haiku", "account": "default", "tier": 1, "verdict": "chosen"},
            {"slot_id": "o1", "model": "opus", "account": "default", "tier": 3, "verdict": "premium_blocked"},
            {"slot_id": "s1", "model": "sonnet", "account": "default", "tier": 2, "verdict": "tier_not_preferred"},
        ],
    }


def fill(r: redis.Redis, key: str, n: int, run: str) -> None:
    for start in range(0, n, 2000):
        pipe = r.pipeline(transaction=False)
        for i in range(start, min(n, start + 2000)):
            pipe.xadd(key, {"data": orjson.dumps(record(i, run))})
        pipe.execute()


def measure(redis_url: str, postgres_url: str, n: int, batch: int) -> float:
    run = uuid.uuid4().hex[:8]
    prefix = f"bench:{run}:"
    schema = f"bench_{run}"
    admin = create_engine(postgres_url)
    with admin.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    engine = make_engine(f"{postgres_url}?options=-csearch_path%3D{schema}")
    r = redis.Redis.from_url(redis_url)
    try:
        upgrade(engine)
        keys = Keys(prefix)
        fill(r, keys.decisions, n, run)
        settings = Settings(redis_url=redis_url, prefix=prefix, recorder_batch=batch, block_ms=100, consumer="bench")
        recorder = Recorder(settings, r, engine=engine, catalog=load_catalog())
        started = time.perf_counter()
        recorder.drain(timeout_s=600)
        elapsed = time.perf_counter() - started
        with engine.connect() as conn:
            stored = conn.execute(select(func.count()).select_from(decisions)).scalar_one()
        pending = r.xpending(keys.decisions, RECORDER_GROUP)["pending"]
        assert stored == n and pending == 0, (stored, pending)
        return n / elapsed
    finally:
        engine.dispose()
        for key in r.scan_iter(match=f"{prefix}*"):
            r.delete(key)
        with admin.begin() as conn:
            conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--decisions", type=int, default=100_000)
    parser.add_argument("--batch", type=int, nargs="+", default=[250, 500, 1000, 2000])
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--postgres-url", default=POSTGRES_URL)
    args = parser.parse_args()
    configure("warning")  # a log line per batch would be measured too
    print(f"{args.decisions} decisions into PostgreSQL")
    for batch in args.batch:
        rate = measure(args.redis_url, args.postgres_url, args.decisions, batch)
        print(f"batch {batch:>5}: {rate:>9,.0f} decisions/s")


if __name__ == "__main__":
    main()

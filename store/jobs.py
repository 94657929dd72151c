"""Low-rate side work run by RQ (JSON serializer, never pickle): the retention delete and the
re-drive of dead-lettered entries. Recording itself does not go through RQ: at ~60 Redis commands
a job an RQ worker drains a few hundred jobs/s, far below the decision rate.

Job arguments are plain JSON values and never hold credentials: the process that runs the jobs
(`router rq-worker`) calls `configure()` with its own settings first."""

from __future__ import annotations

import base64
import math
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import redis
import structlog
from rq import Queue
from rq.serializers import JSONSerializer

from router.errors import ConfigError
from store.db import make_engine
from store.rollup import hour_of
from store.writer import delete_before
from streams.codec import as_text, decode, entry_data
from streams.keys import Keys

log = structlog.get_logger("router.jobs")

RETENTION_JOB_TIMEOUT_S = 3600
# A hundred years: any longer and "now minus the retention age" is no longer a date.
MAX_RETENTION_DAYS = 36_500.0
# The ticker enqueues at most once a minute: it wakes once a minute, and a shorter interval would
# only queue retention jobs back to back.
MIN_RETENTION_EVERY_S = 60.0


@dataclass(frozen=True, slots=True, kw_only=True)
class JobContext:
    database_url: str
    redis_url: str


_context: JobContext | None = None


def configure(*, database_url: str, redis_url: str) -> None:
    """Set where the jobs connect; RQ's forked work horses inherit it."""
    global _context
    _context = JobContext(database_url=database_url, redis_url=redis_url)


def _ctx() -> JobContext:
    if _context is None:
        raise ConfigError("model-router jobs need their settings: run them with `router rq-worker`")
    return _context


def queue_name(prefix: str) -> str:
    return Keys(prefix).jobs_queue


def job_queue(r: redis.Redis, prefix: str) -> Queue:
    return Queue(queue_name(prefix), connection=r, serializer=JSONSerializer)


# -- retention -----------------------------------------------------------------------------------


def check_retention_days(days: float) -> float:
    """`days` if it is a retention age the store can apply, else ConfigError: a job may have been
    queued with any number, and `inf` or `1e9` would overflow the date arithmetic."""
    if not (math.isfinite(days) and 0 < days <= MAX_RETENTION_DAYS):
        raise ConfigError(f"the retention age must be more than 0 and at most {MAX_RETENTION_DAYS:g} days, got {days}")
    return days


def retention_job(days: float) -> dict[str, Any]:
    """Delete decisions (and usage) older than `days`; returns what it deleted."""
    return run_retention(_ctx().database_url, days=days)


def run_retention(database_url: str, *, days: float, now: datetime | None = None) -> dict[str, Any]:
    check_retention_days(days)
    # Whole hours, as the rollup keeps them: the start of the hour `days` ago.
    cutoff = hour_of((now or datetime.now(tz=UTC)) - timedelta(days=days))
    engine = make_engine(database_url)
    try:
        decisions, usage, hours = delete_before(engine, cutoff)
    finally:
        engine.dispose()
    log.info(
        "retention",
        cutoff=cutoff.isoformat(),
        decisions_deleted=decisions,
        usage_deleted=usage,
        rollup_rows_deleted=hours,
    )
    return {
        "cutoff": cutoff.isoformat(),
        "decisions_deleted": decisions,
        "usage_deleted": usage,
        "rollup_rows_deleted": hours,
    }


class RetentionTicker:
    """Enqueues the retention job once per interval across every `router rq-worker` running: a
    Redis key set with NX and the interval as its expiry decides which process enqueues it."""

    def __init__(self, r: redis.Redis, *, prefix: str, days: float, every_s: float, stop: threading.Event) -> None:
        if not (math.isfinite(every_s) and every_s >= MIN_RETENTION_EVERY_S):
            # shorter (or zero, or negative) would enqueue a retention job on every turn of the loop
            raise ConfigError(f"the retention interval must be at least {MIN_RETENTION_EVERY_S:g}s, got {every_s}")
        self.r = r
        self.prefix = prefix
        self.days = check_retention_days(days)
        self.every_s = every_s
        self.stop = stop
        self.lock_key = Keys(prefix).retention_due

    def tick(self) -> bool:
        if not self.r.set(self.lock_key, "1", nx=True, px=max(1, int(self.every_s * 1000))):
            return False
        job = job_queue(self.r, self.prefix).enqueue(
            retention_job, self.days, job_timeout=RETENTION_JOB_TIMEOUT_S, description="model-router retention"
        )
        log.info("retention job enqueued", job_id=job.id, days=self.days, every_s=self.every_s)
        return True

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                self.tick()
            except redis.RedisError as exc:
                log.warning("could not schedule retention", error=str(exc))
            self.stop.wait(MIN_RETENTION_EVERY_S)


# -- dead letters --------------------------------------------------------------------------------


def requeue_job(prefix: str, ids: list[str] | None) -> dict[str, Any]:
    """Send dead-lettered entries back to the stream they came from (`ids` None: all of them)."""
    r = redis.Redis.from_url(_ctx().redis_url)
    try:
        return requeue_dead(r, Keys(prefix), ids)
    finally:
        r.close()


def requeue_dead(r: redis.Redis, keys: Keys, ids: list[str] | None) -> dict[str, Any]:
    """Each entry is re-added to its source stream (input events, or the decisions/usage streams
    for records the recorder refused) and removed from the dead letters in one MULTI, so a
    re-drive never duplicates or drops an entry. Entries with nothing to re-drive are kept."""
    targets = {"decisions": keys.decisions, "usage": keys.usage, "events": keys.events}
    requeued: list[str] = []
    skipped: dict[str, str] = {}
    for entry_id, doc in _dead_entries(r, keys.dead, ids):
        if doc is None:
            skipped[entry_id] = "not found or unreadable"
            continue
        raw = doc.get("raw")
        if not isinstance(raw, str):
            skipped[entry_id] = "the dead letter holds no raw entry"
            continue
        data = base64.b64decode(raw) if doc.get("raw_encoding") == "base64" else raw.encode()
        target = targets.get(str(doc.get("stream", "events")), keys.events)
        pipe = r.pipeline(transaction=True)
        pipe.xadd(target, {"data": data})
        pipe.xdel(keys.dead, entry_id)
        pipe.execute()
        requeued.append(entry_id)
    log.info("dead letters requeued", requeued=len(requeued), skipped=len(skipped))
    return {"requeued": requeued, "skipped": skipped}


def _dead_entries(r: redis.Redis, key: str, ids: list[str] | None) -> list[tuple[str, dict[str, Any] | None]]:
    if ids is not None:
        out: list[tuple[str, dict[str, Any] | None]] = []
        for entry_id in ids:
            found: Any = r.xrange(key, min=entry_id, max=entry_id, count=1)
            # the id found, not the one given: `1732590000000` (no sequence) finds 1732590000000-3,
            # and that is the entry to delete once it is re-driven
            out.append((as_text(found[0][0]), _doc(found[0][1])) if found else (entry_id, None))
        return out
    entries: Any = r.xrange(key)
    return [(as_text(i), _doc(f)) for i, f in entries]


def _doc(fields: Any) -> dict[str, Any] | None:
    data = entry_data(fields or {})
    try:
        doc = decode(data) if data is not None else None
    except ValueError:
        return None
    return doc if isinstance(doc, dict) else None

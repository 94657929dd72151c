"""Commands on the decision store: `recorder`, `db upgrade`, `explain`, `decisions`, `dead`,
`retention` and `rq-worker` (the RQ worker for the low-rate side jobs)."""

from __future__ import annotations

import argparse
import re
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import redis
from alembic.util import CommandError
from rich.console import Console
from rich.text import Text
from sqlalchemy.exc import SQLAlchemyError

from dashboard.queue import QueueUnavailable, one_place, snapshot_loader
from dashboard.tasks import TaskStatus, describe, task_status
from router.catalog import load_catalog
from router.errors import RouterError
from store import explain as explaining
from store import jobs
from store.db import make_engine
from store.migrate import current_revision, head_revision, upgrade
from store.queries import decisions_for_task, list_decisions
from streams.codec import as_text, decode, entry_data
from streams.connection import mask_url
from streams.keys import Keys
from worker.commands.argtypes import positive_count, positive_number_up_to, stream_id
from worker.commands.common import add_connection_options, redis_from, settings_from
from worker.logs import configure
from worker.recorder import Recorder
from worker.settings import Settings, router_config

OUTCOMES = ("assigned", "await_slot", "unroutable", "failed")
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
# `--since` reaches at most this far either side of now, so `now - age` is always a date.
MAX_AGE = timedelta(days=36_500)
# `--retention-every`: at least a minute (the ticker checks once a minute; a shorter interval
# would only enqueue back-to-back retention jobs), at most a year.
MIN_RETENTION_EVERY = timedelta(seconds=jobs.MIN_RETENTION_EVERY_S)
MAX_RETENTION_EVERY = timedelta(days=365)
# `dead requeue --wait`: an hour is far beyond any re-drive; longer means the worker is not running.
MAX_WAIT_S = 3600.0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser("recorder", help="persist decision records and usage to SQL")
    add_connection_options(p, database=True)
    p.add_argument("--batch", type=int, dest="recorder_batch", help="entries per insert (env ROUTER_RECORDER_BATCH)")
    p.add_argument("--consumer", help="consumer name in the recorder group (env ROUTER_CONSUMER)")
    p.set_defaults(func=run_recorder)

    db = subparsers.add_parser("db", help="decision store schema")
    db_sub = db.add_subparsers(dest="db_command", required=True, metavar="ACTION")
    up = db_sub.add_parser("upgrade", help="create or migrate the tables (idempotent)")
    add_connection_options(up, database=True)
    up.add_argument("--revision", type=revision_arg, default="head", help="target revision (default head)")
    up.set_defaults(func=run_db_upgrade)

    ex = subparsers.add_parser("explain", help="every decision about a task, with alternatives and reasons")
    add_connection_options(ex, database=True)
    ex.add_argument("task_id", metavar="TASK_ID")
    ex.add_argument("--json", action="store_true", help="one JSON document for scripts")
    ex.set_defaults(func=run_explain)

    ls = subparsers.add_parser("decisions", help="list recorded decisions from SQL, newest first")
    add_connection_options(ls, database=True)
    ls.add_argument("--since", type=since_arg, help="age (90s, 15m, 1h, 7d) or ISO time (default 1h), within 100 years")
    ls.add_argument("--model", help="only decisions that chose this model")
    ls.add_argument("--layer", help="only tasks of this layer")
    ls.add_argument("--outcome", choices=OUTCOMES, help="only this outcome")
    ls.add_argument("--limit", type=positive_count, default=200, help="at most this many (default 200)")
    ls.add_argument("--json", action="store_true", help="one JSON record per line")
    ls.set_defaults(func=run_decisions)

    dead = subparsers.add_parser("dead", help="dead-lettered entries")
    dead_sub = dead.add_subparsers(dest="dead_command", required=True, metavar="ACTION")
    dl = dead_sub.add_parser("list", help="show dead-lettered entries with their reasons")
    add_connection_options(dl)
    dl.add_argument("--count", "-n", type=positive_count, default=100, help="the newest this many (default 100)")
    dl.add_argument("--json", action="store_true")
    dl.set_defaults(func=run_dead_list)
    rq = dead_sub.add_parser("requeue", help="re-drive dead letters to their source stream (an RQ job)")
    add_connection_options(rq)
    which = rq.add_mutually_exclusive_group(required=True)
    which.add_argument(
        "--id", action="append", dest="ids", type=stream_id, metavar="ID", help="a dead-letter entry id (repeatable)"
    )
    which.add_argument("--all", action="store_true", help="every dead letter")
    rq.add_argument(
        "--wait",
        type=positive_number_up_to(MAX_WAIT_S),
        metavar="SECONDS",
        help=f"wait up to this long for the job's result (at most {MAX_WAIT_S:g})",
    )
    rq.set_defaults(func=run_dead_requeue)

    ret = subparsers.add_parser("retention", help="delete decisions older than the retention age, once")
    add_connection_options(ret, database=True)
    ret.add_argument(
        "--days",
        type=positive_number_up_to(jobs.MAX_RETENTION_DAYS),
        help=f"age in days (env ROUTER_RETENTION_DAYS, default 30, at most {jobs.MAX_RETENTION_DAYS:g})",
    )
    ret.set_defaults(func=run_retention)

    w = subparsers.add_parser("rq-worker", help="RQ worker (JSON serializer) for side jobs; schedules retention")
    add_connection_options(w, database=True)
    w.add_argument(
        "--retention-every",
        type=interval_arg,
        default=timedelta(days=1),
        help="how often: 90s, 15m, 1h, 7d (default 1d, at least 60s)",
    )
    w.add_argument("--no-retention", action="store_true", help="do not schedule the retention job")
    w.add_argument("--burst", action="store_true", help="exit once the queue is empty")
    w.set_defaults(func=run_rq_worker)


# -- argument types: a bad value is a usage error (exit 2), never a traceback ---------------------


def since_arg(value: str) -> timedelta:
    """`90s`, `15m`, `1h`, `7d`, `2w`, or an ISO-8601 time (as the age it is now; UTC if no zone),
    within MAX_AGE of now."""
    match = _DURATION.match(value)
    # seconds compared before timedelta() sees them: 99999999999d is beyond any timedelta
    age = _seconds(match) if match else _age_of(value).total_seconds()
    if abs(age) > MAX_AGE.total_seconds():
        raise argparse.ArgumentTypeError(f"{value!r} is more than {MAX_AGE.days} days from now")
    return timedelta(seconds=age)


def interval_arg(value: str) -> timedelta:
    """A duration (`90s`, `15m`, `1h`, `7d`, `2w`) from MIN_RETENTION_EVERY to MAX_RETENTION_EVERY."""
    match = _DURATION.match(value)
    if match is None:
        raise argparse.ArgumentTypeError(f"{value!r} is not a duration (90s, 15m, 1h, 7d)")
    seconds = _seconds(match)
    if not MIN_RETENTION_EVERY.total_seconds() <= seconds <= MAX_RETENTION_EVERY.total_seconds():
        raise argparse.ArgumentTypeError(
            f"{value!r} must be from {MIN_RETENTION_EVERY.total_seconds():g}s to {MAX_RETENTION_EVERY.days}d"
        )
    return timedelta(seconds=seconds)


def revision_arg(value: str) -> str:
    if not value.strip():
        raise argparse.ArgumentTypeError("the revision must not be empty (head, or a revision id such as 0002)")
    return value


def _seconds(match: re.Match[str]) -> float:
    return float(match.group(1)) * _UNIT_S[match.group(2)]


def _age_of(value: str) -> timedelta:
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a duration (90s, 15m, 1h, 7d) or an ISO time") from None
    at = at if at.tzinfo else at.replace(tzinfo=UTC)
    return datetime.now(tz=UTC) - at  # the difference of two dates always fits; since_arg bounds it


# -- commands ------------------------------------------------------------------------------------


def run_recorder(args: argparse.Namespace) -> int:
    # through settings_from, like the worker's flags, so a flag is checked like its environment variable
    settings = settings_from(args, recorder_batch=args.recorder_batch, consumer=args.consumer)
    configure(settings.log_level)
    return Recorder(settings, redis_from(settings)).run()


def run_db_upgrade(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    engine = make_engine(settings.database_url)
    try:
        upgrade(engine, args.revision)
        print(f"decision store at revision {current_revision(engine)} (head {head_revision()})")
    except CommandError as exc:  # alembic: no such revision, or a relative one that goes nowhere
        raise RouterError(f"cannot migrate to revision {args.revision!r}: {_short(exc)}") from None
    except SQLAlchemyError as exc:
        raise RouterError(f"cannot migrate {mask_url(settings.database_url)}: {_short(exc)}") from None
    finally:
        engine.dispose()
    return 0


def run_explain(args: argparse.Namespace) -> int:
    """The stored decisions and the live ones not recorded yet; either source may be down, and the
    answer says which part is missing. Exit 1 when neither knows the task, 2 when both are down."""
    settings = settings_from(args)
    keys = Keys(settings.prefix)
    stored, store_down = _stored_decisions(settings.database_url, args.task_id)
    r, redis_down = _live_redis(settings)
    streamed: list[dict[str, Any]] = []
    if r is not None:
        try:
            start = "-" if store_down else explaining.unrecorded_start(r, keys)
            streamed = [
                d for d in explaining.stream_records(r, keys.decisions, start) if d.get("task_id") == args.task_id
            ]
        except redis.RedisError as exc:
            redis_down = _short(exc)
    if store_down and redis_down:
        raise RouterError(f"decision store unavailable ({store_down}) and Redis unavailable ({redis_down})")
    records = explaining.merge(stored, streamed)
    warning = _explain_warning(store_down, redis_down)
    status = None if redis_down or r is None else _live_status(r, keys, settings, args.task_id, records)
    if args.json:
        now = status.to_json() if status else {"state": "unknown"}
        now.pop("last_decision", None)  # it is the last of `decisions`
        doc: dict[str, Any] = {"task_id": args.task_id, **now, "decisions": records}
        if warning:
            doc["warning"] = warning
        sys.stdout.buffer.write(orjson.dumps(doc) + b"\n")
        return 0
    console = Console(highlight=False)
    if warning:
        console.print(Text(warning, style="yellow"))
    if status is not None:
        console.print(Text(describe(status), style="bold"))
    console.print(explaining.render(args.task_id, records))
    return 0 if records else 1


def _live_status(
    r: redis.Redis, keys: Keys, settings: Settings, task_id: str, records: list[dict[str, Any]]
) -> TaskStatus | None:
    """The task's state now and, waiting, its live queue place; None when Redis stops answering."""
    load = snapshot_loader(r, keys, load_catalog(settings.catalog_path), router_config(settings))
    try:
        return task_status(r, keys, task_id, records, lambda t: one_place(load, t, int(time.time() * 1000)))
    except (redis.RedisError, QueueUnavailable):
        return None


def _stored_decisions(database_url: str, task_id: str) -> tuple[list[dict[str, Any]], str | None]:
    """The task's decisions in SQL, or why the store could not be read."""
    engine = make_engine(database_url)
    try:
        return [d.to_record() for d in decisions_for_task(engine, task_id)], None
    except SQLAlchemyError as exc:
        return [], _short(exc)
    finally:
        engine.dispose()


def _live_redis(settings: Settings) -> tuple[redis.Redis | None, str | None]:
    """A client for the decisions stream, or why Redis does not answer (the stored part still can)."""
    try:
        return redis_from(settings), None
    except RouterError as exc:
        return None, str(exc)


def _explain_warning(store_down: str | None, redis_down: str | None) -> str | None:
    if store_down:
        return f"decision store unavailable ({store_down}); showing the decisions stream only"
    if redis_down:
        return f"live part unavailable ({redis_down}); showing the recorded decisions only"
    return None


def run_decisions(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    since = datetime.now(tz=UTC) - (args.since if args.since is not None else timedelta(hours=1))
    engine = make_engine(settings.database_url)
    try:
        found = list_decisions(
            engine, since=since, model=args.model, layer=args.layer, outcome=args.outcome, limit=args.limit
        )
    except SQLAlchemyError as exc:
        raise RouterError(f"cannot read the decision store: {_short(exc)}") from None
    finally:
        engine.dispose()
    if args.json:
        for d in found:
            sys.stdout.buffer.write(orjson.dumps(d.to_record()) + b"\n")
        return 0
    console = Console(highlight=False)
    for d in found:
        line = Text(f"{d.decided_at:%Y-%m-%d %H:%M:%S} ", style="dim")
        line.append(f"{d.outcome:<10} ", style=explaining.OUTCOME_STYLE.get(d.outcome, ""))
        line.append(f"{d.task_id:<16} ", style="bold")
        line.append(f"{d.layer:<10} p{d.priority:<3} ev {d.ev:.2f} ")
        if d.chosen_model:
            line.append(f"-> {d.chosen_model} @ {d.chosen_slot_id} ")
        if d.cost_usd is not None:
            line.append(f"${d.cost_usd:.4f} ({d.cost_basis}) ", style="dim")
        line.append(d.reason_code, style="dim")
        console.print(line)
    console.print(Text(f"{len(found)} decision(s) since {since:%Y-%m-%d %H:%M:%S}Z", style="dim"))
    return 0


def run_dead_list(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    r = redis_from(settings)
    entries: Any = r.xrevrange(Keys(settings.prefix).dead, count=args.count)
    console = Console(highlight=False)
    for entry_id, fields in reversed(entries):
        doc = _dead_letter(entry_data(fields or {}))
        if args.json:
            sys.stdout.buffer.write(orjson.dumps({"id": as_text(entry_id), **doc}) + b"\n")
            continue
        line = Text(f"{as_text(entry_id)}  ", style="bold")
        line.append(f"[{doc.get('stream', 'events')} {doc.get('source_id')}] ", style="dim")
        line.append(str(doc.get("error")), style="red")
        line.append(f"\n    {str(doc.get('raw'))[:300]}", style="dim")
        console.print(line)
    return 0


def run_dead_requeue(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    r = redis_from(settings)
    queue = jobs.job_queue(r, settings.prefix)
    job = queue.enqueue(
        jobs.requeue_job,
        settings.prefix,
        None if args.all else list(args.ids),
        description="model-router dead-letter requeue",
    )
    print(f"queued requeue job {job.id} on RQ queue {queue.name!r} (processed by `router rq-worker`)")
    if args.wait is not None:
        result = _wait_for(job, args.wait)
        if result is None:
            print(f"no result within {args.wait:g}s; the job stays queued", file=sys.stderr)
            return 1
        print(orjson.dumps(result).decode())
    return 0


def run_retention(args: argparse.Namespace) -> int:
    settings = settings_from(args, retention_days=args.days)
    days = settings.retention_days
    try:
        result = jobs.run_retention(settings.database_url, days=days)
    except SQLAlchemyError as exc:
        raise RouterError(f"retention failed: {_short(exc)}") from None
    print(
        f"deleted {result['decisions_deleted']} decision(s) and {result['usage_deleted']} usage report(s) "
        f"older than {days:g} days (before {result['cutoff']})"
    )
    return 0


def run_rq_worker(args: argparse.Namespace) -> int:
    from rq import Worker
    from rq.serializers import JSONSerializer

    settings = settings_from(args)
    configure(settings.log_level)
    jobs.configure(database_url=settings.database_url, redis_url=settings.redis_url)
    r = redis_from(settings)
    stop = threading.Event()
    if not args.no_retention:
        ticker = jobs.RetentionTicker(
            r,
            prefix=settings.prefix,
            days=settings.retention_days,
            every_s=args.retention_every.total_seconds(),
            stop=stop,
        )
        threading.Thread(target=ticker.run, name="retention-ticker", daemon=True).start()
    worker = Worker([jobs.job_queue(r, settings.prefix)], connection=r, serializer=JSONSerializer)
    try:
        worker.work(burst=args.burst, with_scheduler=True, logging_level=settings.log_level.upper())
    finally:
        stop.set()
    return 0


# -- helpers -------------------------------------------------------------------------------------


def _dead_letter(data: bytes | None) -> dict[str, Any]:
    """The dead letter's document; anything but a JSON object shows as unreadable with its raw text."""
    try:
        doc = decode(data) if data is not None else {}
    except ValueError:
        doc = None
    if isinstance(doc, dict):
        return doc
    return {"raw": data.decode(errors="replace") if data else None, "error": "unreadable dead letter"}


def _wait_for(job: Any, seconds: float) -> Any:
    deadline = datetime.now(tz=UTC) + timedelta(seconds=seconds)
    while datetime.now(tz=UTC) < deadline:
        status = job.get_status(refresh=True)
        if status == "finished":
            return job.return_value(refresh=True)
        if status == "failed":
            raise RouterError(f"requeue job {job.id} failed; see `rq info` / the RQ failed registry")
        threading.Event().wait(0.2)
    return None


def _short(exc: BaseException) -> str:
    return str(exc).splitlines()[0][:300]

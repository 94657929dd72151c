"""Malformed records go to the dead letters with the reason and are acknowledged; the recorder
carries on; `router dead requeue` re-drives entries through an RQ job."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
import pytest
import redis
from rq import SimpleWorker
from rq.serializers import JSONSerializer

from store import jobs
from streams.keys import RECORDER_GROUP, Keys
from worker import recorder as recorder_module
from worker.cli import main
from worker.recorder import Recorder
from worker.settings import Settings

pytestmark = pytest.mark.integration


def test_malformed_decisions_are_dead_lettered_and_acknowledged(
    r: redis.Redis,
    prefix: str,
    kit: Any,
    make_recorder: Callable[..., Recorder],
    synthetic: Callable[..., dict[str, Any]],
    add: Callable[..., None],
) -> None:
    keys = Keys(prefix)
    add(r, keys.decisions, [synthetic(0)])
    r.xadd(keys.decisions, {"data": b"{not json"})
    r.xadd(keys.decisions, {"other": b"no data field"})
    add(r, keys.decisions, [{**synthetic(1), "outcome": "maybe"}, {**synthetic(2), "priority": "high"}, synthetic(3)])
    add(r, keys.decisions, [{**synthetic(4), "decided_at": 1e30}, {**synthetic(5), "decided_at": 253_402_300_799_999}])
    rec = make_recorder()
    kit.drain_until(rec, lambda: kit.count() == 3 and r.xlen(keys.dead) == 5, what="3 rows and 5 dead letters")

    assert sorted(kit.ids()) == ["s-0", "s-3", "s-5"]  # the last millisecond of year 9999 is a time
    dead = kit.records(keys.dead)
    assert all(d["stream"] == "decisions" for d in dead)
    errors = " | ".join(d["error"] for d in dead)
    assert "not valid JSON" in errors and "no 'data' field" in errors
    assert "outcome 'maybe'" in errors and "priority must be an integer" in errors
    assert "decided_at 1e+30 is not a time that can be stored" in errors
    assert r.xpending(keys.decisions, RECORDER_GROUP)["pending"] == 0


def test_a_record_that_breaks_the_reading_itself_is_dead_lettered_not_retried_forever(
    r: redis.Redis,
    prefix: str,
    kit: Any,
    make_recorder: Callable[..., Recorder],
    synthetic: Callable[..., dict[str, Any]],
    add: Callable[..., None],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A record the checks let through but the reading trips over (a bug of ours, injected here):
    reading it again would fail again, so it goes to the dead letters (to requeue once fixed) with
    the error, and the recorder carries on with the rest."""
    read = recorder_module.decision_row

    def trips_on_s1(doc: Any, **kw: Any) -> Any:
        if doc.get("decision_id") == "s-1":
            raise ZeroDivisionError("injected")
        return read(doc, **kw)

    monkeypatch.setattr(recorder_module, "decision_row", trips_on_s1)
    keys = Keys(prefix)
    add(r, keys.decisions, [synthetic(0), synthetic(1), synthetic(2)])
    rec = make_recorder()
    kit.drain_until(rec, lambda: kit.count() == 2 and r.xlen(keys.dead) == 1, what="2 rows and 1 dead letter")

    assert sorted(kit.ids()) == ["s-0", "s-2"]
    (dead,) = kit.records(keys.dead)
    assert dead["error"] == "could not be read as a record: ZeroDivisionError: injected"
    assert orjson.loads(dead["raw"])["decision_id"] == "s-1"  # the entry, kept whole for a requeue
    assert r.xpending(keys.decisions, RECORDER_GROUP)["pending"] == 0


def test_dead_list_command(r: redis.Redis, prefix: str, settings: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    keys = Keys(prefix)
    r.xadd(keys.dead, {"data": orjson.dumps({"source_id": "1-0", "raw": "{}", "error": "unknown model 'x'"})})
    assert main(["dead", "list", "--redis-url", settings.redis_url, "--prefix", prefix, "--json"]) == 0
    [line] = capsys.readouterr().out.splitlines()
    assert orjson.loads(line)["error"] == "unknown model 'x'"


def test_requeue_redrives_through_an_rq_job(
    r: redis.Redis, prefix: str, settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    keys = Keys(prefix)
    event = {"type": "task.pending", "task_id": "t1", "priority": 5, "requires": {}}
    kept = r.xadd(keys.dead, {"data": orjson.dumps({"source_id": "1-0", "raw": "x", "error": "bad"})}).decode()
    redo = r.xadd(
        keys.dead,
        {"data": orjson.dumps({"source_id": "2-0", "raw": orjson.dumps(event).decode(), "error": "unknown model"})},
    ).decode()
    conn = ["--redis-url", settings.redis_url, "--prefix", prefix]
    assert main(["dead", "requeue", "--id", redo, *conn]) == 0
    assert "queued requeue job" in capsys.readouterr().out
    jobs.configure(database_url=settings.database_url, redis_url=settings.redis_url)
    queue = jobs.job_queue(r, prefix)
    try:
        SimpleWorker([queue], connection=r, serializer=JSONSerializer).work(burst=True)
    finally:
        queue.delete(delete_jobs=True)
    [(_, fields)] = r.xrange(keys.events)
    assert orjson.loads(fields[b"data"]) == event
    assert [i.decode() for i, _ in r.xrange(keys.dead)] == [kept]


def test_requeue_needs_an_id_or_all(settings: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["dead", "requeue", "--redis-url", settings.redis_url])
    assert exit_info.value.code == 2
    assert "one of the arguments --id --all is required" in capsys.readouterr().err

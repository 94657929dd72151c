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
    rec = make_recorder()
    kit.drain_until(rec, lambda: kit.count() == 2 and r.xlen(keys.dead) == 4, what="2 rows and 4 dead letters")

    assert sorted(kit.ids()) == ["s-0", "s-3"]
    dead = kit.records(keys.dead)
    assert all(d["stream"] == "decisions" for d in dead)
    errors = " | ".join(d["error"] for d in dead)
    assert "not valid JSON" in errors and "no 'data' field" in errors
    assert "outcome 'maybe'" in errors and "priority must be an integer" in errors
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

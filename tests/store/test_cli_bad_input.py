"""Bad input to the store's commands (and the job code behind them): one clear line and exit 2,
never a traceback, and nothing queued or run on the way there."""

from __future__ import annotations

import math
import threading
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
import redis
from rq import Queue
from support.cli import assert_usage_error, run_router

from router.errors import ConfigError
from store import jobs
from store.db import make_engine
from streams.keys import Keys

pytestmark = pytest.mark.integration

UNUSABLE_DATABASE_URLS = ["nonsense", "foo://x", "mysql://u:s3cret@h/db"]  # no MySQL driver is installed


@pytest.fixture
def env(redis_url: str, prefix: str, tmp_path: Path, r: redis.Redis) -> dict[str, str]:
    """The test's Redis and key prefix (cleaned up by `r`), and a database of its own."""
    return {"REDIS_URL": redis_url, "ROUTER_PREFIX": prefix, "DATABASE_URL": f"sqlite:///{tmp_path / 'store.sqlite3'}"}


@pytest.fixture
def queue(r: redis.Redis, prefix: str) -> Iterator[Queue]:
    """The RQ queue of the test's prefix; RQ names its keys rq:queue:<name> and rq:job:<id>, so
    they are deleted here rather than by the prefix cleanup."""
    q = jobs.job_queue(r, prefix)
    yield q
    q.delete(delete_jobs=True)


# -- database URLs ---------------------------------------------------------------------------------


@pytest.mark.parametrize("url", UNUSABLE_DATABASE_URLS)
@pytest.mark.parametrize(
    "command",
    [
        ["db", "upgrade"],
        ["explain", "t-1"],
        ["decisions"],
        ["recorder"],
        ["web", "--port", "0"],
        ["retention"],
        ["demo", "--web-port", "0", "--seconds", "5"],
    ],
    ids=lambda c: c[0],
)
def test_unusable_database_url_is_a_clear_message(
    command: list[str], url: str, env: dict[str, str], tmp_path: Path
) -> None:
    result = run_router(*command, "--database-url", url, env=env, cwd=tmp_path)
    assert_usage_error(result, "database URL")
    assert "s3cret" not in result.stderr


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("nonsense", "is not usable"),
        ("foo://x", "is not usable"),
        ("mysql://u:s3cret@h/db", "needs a driver that is not installed"),
        ("postgresql+psycopg://u:s3cret@h:notaport/db", "is not valid"),
    ],
)
def test_make_engine_raises_config_error_with_the_password_masked(url: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as caught:
        make_engine(url)
    assert "s3cret" not in str(caught.value)


@pytest.mark.parametrize("revision", ["nonsense", "", "-1"])
def test_db_upgrade_to_a_revision_that_does_not_resolve_is_a_clear_message(
    revision: str, env: dict[str, str], tmp_path: Path
) -> None:
    result = run_router("db", "upgrade", f"--revision={revision}", env=env, cwd=tmp_path)
    assert_usage_error(result, "revision")


def test_db_upgrade_failure_names_only_the_masked_database_url(env: dict[str, str], tmp_path: Path) -> None:
    url = "postgresql+psycopg://postgres:s3cret@127.0.0.1:1/test"  # nothing listens on port 1
    result = run_router("db", "upgrade", "--database-url", url, env=env, cwd=tmp_path)
    assert_usage_error(result, "cannot migrate postgresql+psycopg://postgres:***@127.0.0.1:1/test: ")
    assert "Settings(" not in result.stderr and "s3cret" not in result.stderr


# -- decisions -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--since", "800000d"], "argument --since: '800000d' is more than 36500 days from now"),
        (["--since", "1000000w"], "argument --since: '1000000w' is more than 36500 days from now"),
        (["--since", "99999999999d"], "argument --since: '99999999999d' is more than 36500 days from now"),
        (["--since", "9999-12-31T23:00-05:00"], "is more than 36500 days from now"),
        (["--limit", "99999999999999999999"], "argument --limit: '99999999999999999999' must be at most 10000000"),
    ],
)
def test_decisions_refuses_times_and_limits_out_of_range(
    args: list[str], message: str, env: dict[str, str], tmp_path: Path
) -> None:
    assert_usage_error(run_router("decisions", *args, env=env, cwd=tmp_path), message)


# -- dead letters ----------------------------------------------------------------------------------


def test_dead_list_shows_an_entry_that_is_not_a_json_object_as_unreadable(
    r: redis.Redis, prefix: str, env: dict[str, str], tmp_path: Path
) -> None:
    dead = Keys(prefix).dead
    r.xadd(dead, {"data": b"[1,2]"})
    r.xadd(dead, {"data": b"5"})
    r.xadd(dead, {"data": orjson.dumps({"stream": "events", "source_id": "1-0", "error": "bad", "raw": "{}"})})
    as_json = run_router("dead", "list", "--json", env=env, cwd=tmp_path)
    assert as_json.returncode == 0, as_json.stderr
    docs = [orjson.loads(line) for line in as_json.stdout.splitlines()]
    assert [(d["raw"], d["error"]) for d in docs] == [
        ("[1,2]", "unreadable dead letter"),
        ("5", "unreadable dead letter"),
        ("{}", "bad"),
    ]
    as_text = run_router("dead", "list", env=env, cwd=tmp_path)
    assert as_text.returncode == 0, as_text.stderr
    assert as_text.stdout.count("unreadable dead letter") == 2


def test_dead_list_count_is_bounded(env: dict[str, str], tmp_path: Path) -> None:
    result = run_router("dead", "list", "-n", "99999999999999999999", env=env, cwd=tmp_path)
    assert_usage_error(result, "must be at most 10000000")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--id", "abc"], "'abc' is not a stream entry id"),
        (["--id="], "'' is not a stream entry id"),
        (["--id", "1-0-0"], "is not a stream entry id"),
        (["--id", "99999999999999999999999-0"], "is not a stream entry id"),  # beyond 64 bits
        (["--all", "--wait", "inf"], "argument --wait: 'inf' must be positive and finite"),
        (["--all", "--wait", "nan"], "argument --wait: 'nan' must be positive and finite"),
        (["--all", "--wait", "-5"], "argument --wait: '-5' must be positive and finite"),
        (["--all", "--wait", "1e20"], "argument --wait: '1e20' must be at most 3600"),
    ],
)
def test_dead_requeue_refuses_bad_input_before_queueing_anything(
    args: list[str], message: str, env: dict[str, str], tmp_path: Path, queue: Queue
) -> None:
    result = run_router("dead", "requeue", *args, env=env, cwd=tmp_path)
    assert_usage_error(result, message)
    assert "queued" not in result.stdout
    assert queue.count == 0


@pytest.mark.parametrize("entry_id", ["1732590000000-0", "1732590000000"])
def test_dead_requeue_queues_a_job_for_a_well_formed_id(
    entry_id: str, env: dict[str, str], tmp_path: Path, queue: Queue
) -> None:
    result = run_router("dead", "requeue", "--id", entry_id, env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert queue.count == 1


def test_requeue_by_milliseconds_alone_deletes_the_entry_it_re_drove(r: redis.Redis, prefix: str) -> None:
    """`--id 1000` is a well-formed id (the sequence left out): the dead letter it finds, 1000-3,
    is the one deleted, so running the re-drive again does not send it twice."""
    keys = Keys(prefix)
    doc = {"stream": "events", "source_id": "7-0", "error": "bad", "raw": '{"type": "slot.free"}'}
    r.xadd(keys.dead, {"data": orjson.dumps(doc)}, id="1000-3")
    assert jobs.requeue_dead(r, keys, ["1000"]) == {"requeued": ["1000-3"], "skipped": {}}
    assert r.xlen(keys.dead) == 0
    assert jobs.requeue_dead(r, keys, ["1000"])["requeued"] == []
    assert [fields[b"data"] for _, fields in r.xrange(keys.events)] == [b'{"type": "slot.free"}']


# -- recorder, retention, rq-worker ----------------------------------------------------------------


@pytest.mark.parametrize("batch", ["0", "-1"])
def test_recorder_batch_flag_is_checked_like_its_setting(batch: str, env: dict[str, str], tmp_path: Path) -> None:
    result = run_router("recorder", "--batch", batch, env=env, cwd=tmp_path)
    assert_usage_error(result, f"recorder_batch must be an integer from 1 to 100,000, got {batch}")


@pytest.mark.parametrize(
    ("days", "message"),
    [
        ("inf", "'inf' must be positive and finite"),
        ("1e9", "'1e9' must be at most 36500"),
        ("800000", "'800000' must be at most 36500"),
    ],
)
def test_retention_days_out_of_range_is_a_clear_message(
    days: str, message: str, env: dict[str, str], tmp_path: Path
) -> None:
    assert_usage_error(run_router("retention", "--days", days, env=env, cwd=tmp_path), message)


@pytest.mark.parametrize("days", [math.inf, math.nan, 0.0, -1.0, 1e9, 800_000.0])
def test_run_retention_refuses_an_age_no_date_can_hold(days: float, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="retention age"):
        jobs.run_retention(f"sqlite:///{tmp_path / 'store.sqlite3'}", days=days)


@pytest.mark.parametrize(
    ("every", "message"),
    [
        ("0s", "'0s' must be from 60s to 365d"),
        ("59s", "'59s' must be from 60s to 365d"),
        ("99999999999d", "'99999999999d' must be from 60s to 365d"),
        ("-5s", "'-5s' is not a duration"),
        ("2020-01-01", "'2020-01-01' is not a duration"),
        ("3000-01-01T00:00", "'3000-01-01T00:00' is not a duration"),
    ],
)
def test_rq_worker_retention_every_has_a_minimum(
    every: str, message: str, env: dict[str, str], tmp_path: Path, queue: Queue
) -> None:
    result = run_router("rq-worker", "--burst", f"--retention-every={every}", env=env, cwd=tmp_path)
    assert_usage_error(result, f"argument --retention-every: {message}")
    assert queue.count == 0


@pytest.mark.parametrize("every_s", [0.0, -1.0, 59.0, math.nan, math.inf])
def test_retention_ticker_refuses_an_interval_that_would_enqueue_every_turn(
    every_s: float, r: redis.Redis, prefix: str
) -> None:
    with pytest.raises(ConfigError, match="retention interval must be at least 60s"):
        jobs.RetentionTicker(r, prefix=prefix, days=30, every_s=every_s, stop=threading.Event())


def test_retention_ticker_enqueues_once_per_interval(r: redis.Redis, prefix: str, queue: Queue) -> None:
    ticker = jobs.RetentionTicker(r, prefix=prefix, days=30, every_s=60, stop=threading.Event())
    assert [ticker.tick(), ticker.tick(), ticker.tick()] == [True, False, False]
    assert queue.count == 1

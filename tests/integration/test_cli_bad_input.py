"""Bad input to `router` (Redis URLs, tail, web, demo): one clear line and exit 2, never a
traceback; and mask_url, which those messages use."""

from __future__ import annotations

import math
from pathlib import Path

import orjson
import pytest
import redis
from support.cli import assert_usage_error, run_router

from router.errors import ConfigError
from streams.connection import mask_url
from streams.keys import Keys
from worker.demo_fleet import Pace

pytestmark = pytest.mark.integration


@pytest.fixture
def env(redis_url: str, prefix: str, tmp_path: Path, r: redis.Redis) -> dict[str, str]:
    """The test's Redis and key prefix (cleaned up by `r`), and a database of its own."""
    return {"REDIS_URL": redis_url, "ROUTER_PREFIX": prefix, "DATABASE_URL": f"sqlite:///{tmp_path / 'd.sqlite3'}"}


# -- Redis URLs ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("nonsense", "must specify one of the following schemes"),
        ("redis://h:notaport", "Port could not be cast to integer"),
        ("redis://h:99999", "Port out of range"),
        ("redis://[::1", "Invalid IPv6 URL"),
        ("redis://h/0?socket_timeout=abc", "Invalid value for 'socket_timeout'"),
        ("redis+sentinel://h:26379/", "it names no service"),
        ("redis+sentinel://h:x/mymaster", "invalid literal for int()"),
        ("redis+sentinel://h:1,h:70000/mymaster", "port 70000 is out of range"),
        ("redis+sentinel://h:26379/mymaster/zero", "invalid literal for int()"),
    ],
)
def test_malformed_redis_url_is_a_clear_message(url: str, reason: str) -> None:
    result = run_router("tail", env={"REDIS_URL": url})
    assert_usage_error(result, f"router tail: Redis URL {url!r} is not valid: ")
    assert reason in result.stderr


@pytest.mark.parametrize("command", [["worker"], ["web", "--port", "0"], ["dead", "list"]], ids=lambda c: c[0])
def test_malformed_redis_url_is_a_clear_message_for_every_command(command: list[str], tmp_path: Path) -> None:
    result = run_router(*command, env={"REDIS_URL": "redis://h:notaport"}, cwd=tmp_path)
    assert_usage_error(result, "Redis URL 'redis://h:notaport' is not valid")


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://:s3cret@h:99999/0", "Redis URL 'redis://:***@h:99999/0' is not valid"),
        ("redis://u:s3cret@[::1", "Redis URL '<unparseable url>' is not valid"),
    ],
)
def test_malformed_redis_url_message_masks_the_password(url: str, shown: str) -> None:
    result = run_router("tail", env={"REDIS_URL": url})
    assert_usage_error(result, shown)
    assert "s3cret" not in result.stderr


@pytest.mark.parametrize(
    "url",
    [
        "sqlite:////tmp/x",
        "sqlite:///relative.sqlite3",
        "unix:///x.sock",
        "unix:///x.sock?db=0",
        "redis://h:6379/0?cluster=true",
        "postgresql+psycopg://u@h/db",
        "redis://[::1",
    ],
)
def test_mask_url_leaves_a_url_without_a_password_as_it_is(url: str) -> None:
    assert mask_url(url) == url


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("unix:///tmp/r.sock?db=0&password=s3cret", "unix:///tmp/r.sock?db=0&password=***"),
        ("sqlite:////tmp/x?password=s3cret", "sqlite:////tmp/x?password=***"),
        ("redis://u:s3cret@[::1]:6379/0", "redis://u:***@[::1]:6379/0"),
        ("redis://u:s3cret@Host:notaport/0", "redis://u:***@Host:notaport/0"),
        ("rediss://:s3cret@redis.example:6380/0", "rediss://:***@redis.example:6380/0"),
    ],
)
def test_mask_url_hides_only_the_password(url: str, masked: str) -> None:
    assert mask_url(url) == masked


# -- tail ------------------------------------------------------------------------------------------


def test_tail_count_zero_prints_nothing(r: redis.Redis, prefix: str, env: dict[str, str]) -> None:
    record = {"task_id": "a", "outcome": "assigned", "reason": "r", "priority": 1, "ev": 0.1}
    r.xadd(Keys(prefix).decisions, {"data": orjson.dumps(record)})
    result = run_router("tail", "-n", "0", env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""


@pytest.mark.parametrize(
    ("count", "message"),
    [("-5", "'-5' must not be negative"), ("99999999999999999999", "'99999999999999999999' must be at most 10000000")],
)
def test_tail_count_out_of_range_is_a_clear_message(count: str, message: str, env: dict[str, str]) -> None:
    assert_usage_error(run_router("tail", "-n", count, env=env), f"argument --count/-n: {message}")


# -- web and demo ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["web", "--port", "-1"], "argument --port: '-1' must not be negative"),
        (["web", "--port", "99999"], "argument --port: '99999' must be at most 65535"),
        (["web", "--refresh-s", "0"], "argument --refresh-s: '0' must be"),
        (
            ["web", "--refresh-s", "99999999999999999999"],
            "argument --refresh-s: '99999999999999999999' must be at most 86400",
        ),
        (["demo", "--web-port", "-1"], "argument --web-port: '-1' must not be negative"),
        (["demo", "--web-port", "99999"], "argument --web-port: '99999' must be at most 65535"),
        (["demo", "--tasks-per-s", "0"], "argument --tasks-per-s: '0' must be positive and finite"),
        (["demo", "--tasks-per-s", "-1"], "argument --tasks-per-s: '-1' must be positive and finite"),
        (["demo", "--tasks-per-s", "nan"], "argument --tasks-per-s: 'nan' must be positive and finite"),
        (["demo", "--tasks-per-s", "inf"], "argument --tasks-per-s: 'inf' must be positive and finite"),
        (["demo", "--tasks-per-s", "1e9"], "argument --tasks-per-s: '1e9' must be at most 1000"),
        (["demo", "--seconds", "nan"], "argument --seconds: 'nan' must be positive and finite"),
        (["demo", "--seconds", "inf"], "argument --seconds: 'inf' must be positive and finite"),
        (["demo", "--seconds", "0"], "argument --seconds: '0' must be positive and finite"),
    ],
)
def test_web_and_demo_refuse_out_of_range_numbers(
    args: list[str], message: str, env: dict[str, str], tmp_path: Path
) -> None:
    # a short, dashboard-less demo on the test's Redis and prefix, should a value get through
    defaults = {"--seconds": "1", "--web-port": "0"} if args[0] == "demo" else {}
    extra = [item for flag, value in defaults.items() if flag not in args for item in (flag, value)]
    assert_usage_error(run_router(*args, *extra, env=env, cwd=tmp_path), message)


@pytest.mark.parametrize("tasks_per_s", [0.0, -1.0, math.nan, math.inf, 1e6])
def test_demo_pace_refuses_a_rate_the_dispatcher_cannot_keep(tasks_per_s: float) -> None:
    with pytest.raises(ConfigError, match="tasks_per_s must be more than 0"):
        Pace(tasks_per_s=tasks_per_s)

"""The `router` console script as ops use it."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
import redis
from support.cli import run_router

from streams.keys import Keys

pytestmark = pytest.mark.integration


def _record(task_id: str, outcome: str, model: str | None, layer: str) -> dict[str, Any]:
    return {
        "decision_id": f"1-0.{task_id}",
        "task_id": task_id,
        "outcome": outcome,
        "reason_code": "cheapest_capable",
        "reason": f"because {task_id}",
        "chosen_slot_id": "s1" if model else None,
        "chosen_model": model,
        "chosen_tier": 1 if model else None,
        "layer": layer,
        "priority": 10,
        "ev": 0.1,
        "dry_run": False,
    }


def test_tail_lists_filters_and_prints_json(r: redis.Redis, redis_url: str, prefix: str) -> None:
    keys = Keys(prefix)
    for rec in (
        _record("a", "assigned", "haiku", "chore"),
        _record("b", "await_slot", None, "design"),
        _record("c", "assigned", "opus", "design"),
    ):
        r.xadd(keys.decisions, {"data": orjson.dumps(rec)})
    env = {"REDIS_URL": redis_url, "ROUTER_PREFIX": prefix}
    plain = run_router("tail", env=env)
    assert plain.returncode == 0, plain.stderr
    assert [line.split()[1] for line in plain.stdout.splitlines()] == ["a", "b", "c"]
    filtered = run_router("tail", "--json", "--layer", "design", "--outcome", "assigned", env=env)
    assert [orjson.loads(line)["task_id"] for line in filtered.stdout.splitlines()] == ["c"]


def test_unreachable_redis_is_a_clear_message_not_a_traceback() -> None:
    result = run_router("tail", env={"REDIS_URL": "redis://:s3cret@127.0.0.1:1/0"})
    assert result.returncode == 2
    assert "cannot reach Redis at redis://:***@127.0.0.1:1/0" in result.stderr
    assert "Traceback" not in result.stderr and "s3cret" not in result.stderr


def test_bad_setting_is_a_clear_message() -> None:
    result = run_router("worker", "--batch-size", "0", env={})
    assert result.returncode == 2
    assert "batch_size must be an integer from 1 to 100,000, got 0" in result.stderr

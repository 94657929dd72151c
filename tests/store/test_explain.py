"""`router explain`: an assigned, an awaiting and an unroutable task, from SQL and the stream."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from support.cli import assert_usage_error, run_router
from support.ports import unused_port
from support.processes import wait_for

from streams.keys import Keys
from worker.cli import main
from worker.recorder import Recorder
from worker.settings import Settings

pytestmark = pytest.mark.integration


@pytest.fixture
def recorded(
    settings: Settings,
    kit: Any,
    scenario: list[dict[str, Any]],
    running_worker: Callable[[], Any],
    make_recorder: Callable[..., Recorder],
) -> list[str]:
    keys = Keys(settings.prefix)
    running_worker()
    kit.publish(scenario)
    wait_for(lambda: len(kit.records(keys.decisions)) >= 4, what="four decisions")
    rec = make_recorder()
    kit.drain_until(rec, lambda: kit.count() == 4, what="four decisions in SQL")
    return ["--redis-url", settings.redis_url, "--prefix", settings.prefix, "--database-url", settings.database_url]


def _explain(capsys: pytest.CaptureFixture[str], conn: list[str], task_id: str, *extra: str) -> tuple[int, str]:
    capsys.readouterr()
    code = main(["explain", task_id, *conn, *extra])
    return code, capsys.readouterr().out


def _json(out: str) -> dict[str, Any]:
    """The explain document (the worker thread's log lines share captured stdout)."""
    [line] = [line for line in out.splitlines() if line.startswith('{"task_id"')]
    doc: dict[str, Any] = orjson.loads(line)
    return doc


def test_explain_assigned(recorded: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    code, out = _explain(capsys, recorded, "big")
    assert code == 0
    assert "ASSIGNED" in out and "opus (tier 3) on slot o1" in out
    assert "override_highest_tier" in out
    assert "EV 0.990" in out and "priority 95" in out and "quest priority 96" in out
    assert "chosen" in out  # the alternatives table with verdicts
    assert "estimated $" in out


def test_explain_awaiting(recorded: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    code, out = _explain(capsys, recorded, "waits")
    assert code == 0
    assert "AWAIT_SLOT" in out and "no_free_capable_slot" in out
    assert "busy" in out  # opus is busy with the big task; that is why it waits


def test_explain_unroutable(recorded: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    code, out = _explain(capsys, recorded, "never")
    assert code == 0
    assert "UNROUTABLE" in out and "no_capable_model" in out
    assert "writing" in out  # the capability no model reaches


def test_explain_json(recorded: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    code, out = _explain(capsys, recorded, "big", "--json")
    assert code == 0
    doc = _json(out)
    [decision] = doc["decisions"]
    assert decision["chosen_model"] == "opus" and decision["recorded"] is True
    assert decision["reason_code"] == "override_highest_tier"
    assert any(a["verdict"] == "chosen" for a in decision["alternatives"])


def test_explain_includes_decisions_not_yet_recorded(
    recorded: list[str], kit: Any, settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    kit.publish([{"type": "task.pending", "task_id": "fresh", "priority": 10, "requires": {"coding": 9}}])
    wait_for(
        lambda: any(d["task_id"] == "fresh" for d in kit.records(Keys(settings.prefix).decisions)),
        what="a decision about the fresh task",
    )
    code, out = _explain(capsys, recorded, "fresh", "--json")
    [decision] = _json(out)["decisions"]
    assert code == 0 and decision["recorded"] is False and decision["outcome"] == "await_slot"


def test_explain_unknown_task(recorded: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    code, out = _explain(capsys, recorded, "nobody")
    assert code == 1 and "No decision about task 'nobody'" in out


# -- Redis down: the recorded decisions still answer -------------------------------------------


def _refused_redis_url() -> str:
    return f"redis://127.0.0.1:{unused_port()}/0"


def _without_redis(conn: list[str]) -> list[str]:
    return [*conn, "--redis-url", _refused_redis_url()]  # the last --redis-url wins


def test_explain_answers_from_sql_when_redis_is_down(recorded: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    code, out = _explain(capsys, _without_redis(recorded), "big")
    assert code == 0
    assert "live part unavailable" in out and "cannot reach Redis" in out
    assert "ASSIGNED" in out and "opus (tier 3) on slot o1" in out and "override_highest_tier" in out


def test_explain_json_when_redis_is_down_says_so(recorded: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    code, out = _explain(capsys, _without_redis(recorded), "waits", "--json")
    doc = _json(out)
    assert code == 0
    assert doc["warning"].startswith("live part unavailable")
    [decision] = doc["decisions"]
    assert decision["outcome"] == "await_slot" and decision["recorded"] is True


def test_explain_with_redis_down_and_no_stored_decision_exits_1(
    recorded: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = _explain(capsys, _without_redis(recorded), "nobody")
    assert code == 1 and "live part unavailable" in out and "No decision about task 'nobody'" in out


def test_explain_with_redis_and_the_store_down_is_one_line_and_exit_2(tmp_path: Path) -> None:
    unreachable_db = "postgresql+psycopg://nobody@127.0.0.1:1/none?connect_timeout=2"
    result = run_router("explain", "big", "--redis-url", _refused_redis_url(), "--database-url", unreachable_db, env={})
    assert_usage_error(result, "router explain: decision store unavailable")
    assert "Redis unavailable" in result.stderr and len(result.stderr.strip().splitlines()) == 1

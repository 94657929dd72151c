"""`router quality` (table and --json, --hours, refusals) and the attempt chain in `router explain`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from sqlalchemy import Engine
from support.cli import assert_usage_error, run_router

from store import explain
from store.records import decision_row, usage_row
from store.writer import insert_decisions, insert_usage
from worker.cli import main

pytestmark = pytest.mark.integration


def _seed(engine: Engine, *, failures: int, successes: int) -> None:
    """haiku on layer docs: `failures` capability failures and `successes` successes, an hour ago."""
    at_ms = int((datetime.now(tz=UTC) - timedelta(hours=1)).timestamp() * 1000)
    decided, reported = [], []
    for i in range(failures + successes):
        decided.append(
            {
                "decision_id": f"c-{i}",
                "task_id": f"t{i}",
                "outcome": "assigned",
                "reason_code": "cheapest_capable",
                "reason": "seeded",
                "chosen_slot_id": "h1",
                "chosen_model": "haiku",
                "chosen_tier": 1,
                "layer": "docs",
                "priority": 50,
                "ev": 0.5,
                "est_cost_usd": 0.01,
                "decided_at": at_ms + i,
                "requirement_level": 4,
            }
        )
        outcome: dict[str, Any] = {"outcome": "succeeded"}
        if i < failures:
            outcome = {"outcome": "failed", "failure": "capability"}
        reported.append(
            {
                "decision_id": f"c-{i}",
                "task_id": f"t{i}",
                "slot_id": "h1",
                "model": "haiku",
                "cost_usd": 0.01,
                "event_id": f"1-{i}",
                "at": at_ms + i,
                "outcome_effect": "none",
                **outcome,
            }
        )
    now = datetime.now(tz=UTC)
    with engine.begin() as conn:
        insert_decisions(conn, [decision_row(d, stream_id=None, recorded_at=now) for d in decided])
        insert_usage(conn, [usage_row(u, stream_id=None, recorded_at=now) for u in reported])


def test_quality_json_and_the_suggested_catalogue_change(
    engine: Engine, database_url: str, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    _seed(engine, failures=30, successes=10)  # 10/40: upper bound 0.40 < 0.7
    assert main(["quality", "--json", "--hours", "24", "--database-url", database_url]) == 0
    doc = orjson.loads(capsysbinary.readouterr().out)
    (row,) = doc["by_layer"]
    assert (row["model"], row["layer"], row["tasks"], row["succeeded"], row["failed_capability"]) == (
        "haiku",
        "docs",
        40,
        10,
        30,
    )
    assert row["usd_per_success"] == pytest.approx(0.04)  # 40 attempts at $0.01, 10 successes
    assert [level["level"] for level in doc["by_requirement_level"]] == [4]
    (suggestion,) = doc["suggested_catalogue_changes"]
    assert (suggestion["model"], suggestion["layer"]) == ("haiku", "docs")


def test_quality_table_names_the_suggestion(
    engine: Engine, database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    _seed(engine, failures=2, successes=8)
    assert main(["quality", "--database-url", database_url]) == 0
    out = capsys.readouterr().out
    assert "haiku" in out and "docs" in out and "80%" in out
    assert "suggested catalogue changes: none" in out  # 10 outcomes: too few to judge


def test_quality_hours_outside_the_window_are_ignored(engine: Engine, database_url: str, capsysbinary: Any) -> None:
    _seed(engine, failures=1, successes=1)
    assert main(["quality", "--json", "--hours", "1", "--database-url", database_url]) == 0
    # seeded an hour and a few milliseconds ago: outside the last hour
    assert orjson.loads(capsysbinary.readouterr().out)["by_layer"] == []


@pytest.mark.parametrize(("hours", "message"), [("0", "hours must be from 1 to 720"), ("x", "not a whole number")])
def test_quality_refuses_bad_hours(hours: str, message: str) -> None:
    assert_usage_error(run_router("quality", "--hours", hours, env={}), message)


def test_explain_shows_the_attempt_chain() -> None:
    records = [
        {"decision_id": "1-0.1", "outcome": "assigned", "chosen_model": "haiku", "attempt": 1, "decided_at": 1},
        {"decision_id": "2-0.1", "outcome": "await_slot", "reason_code": "escalated", "attempt": 2, "decided_at": 2},
        {"decision_id": "2-0.2", "outcome": "assigned", "chosen_model": "sonnet", "attempt": 2, "decided_at": 3},
    ]
    records[0] |= {"task_outcome": "failed", "task_failure": "capability", "previous_decision_id": None}
    records[1]["previous_decision_id"] = records[2]["previous_decision_id"] = "1-0.1"
    records[2]["task_outcome"] = "succeeded"
    assert explain.attempt_chain(records) == "1 haiku (failed: capability) -> 2 sonnet (succeeded)"
    from rich.console import Console

    console = Console(width=200, record=True)
    console.print(explain.render("t1", records))
    text = console.export_text()
    assert "Attempts: 1 haiku (failed: capability) -> 2 sonnet (succeeded)" in text
    assert "attempt 2, after 1-0.1" in text
    assert "slot reported: failed (capability)" in text
    assert explain.attempt_chain(records[:1]) == ""

"""Decisions made by a running worker reach SQL with every column as the worker wrote it."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
import redis
from sqlalchemy import Engine, select
from support.processes import wait_for

from store.queries import decisions_for_task, model_layer_matrix
from store.schema import decisions, usage
from streams.clients import Slot
from streams.keys import Keys
from worker.recorder import Recorder

pytestmark = pytest.mark.integration

COLUMNS_FROM_RECORD = (
    "decision_id",
    "task_id",
    "outcome",
    "reason_code",
    "reason",
    "chosen_slot_id",
    "chosen_model",
    "chosen_tier",
    "account",
    "layer",
    "priority",
    "quest_priority",
    "title",
    "ev",
    "ev_p50",
    "ev_p90",
    "override",
    "min_tier",
    "est_cost_usd",
    "dry_run",
    "event_id",
    "policy_version",
)


def _rows(engine: Engine) -> dict[str, dict[str, Any]]:
    with engine.connect() as conn:
        return {row.decision_id: dict(row._mapping) for row in conn.execute(select(decisions))}


def test_worker_decisions_recorded_with_every_column(
    r: redis.Redis,
    prefix: str,
    engine: Engine,
    kit: Any,
    scenario: list[dict[str, Any]],
    running_worker: Callable[[], Any],
    make_recorder: Callable[..., Recorder],
) -> None:
    keys = Keys(prefix)
    running_worker()
    kit.publish(scenario)
    records = wait_for(
        lambda: len(kit.records(keys.decisions)) >= 4 and kit.records(keys.decisions),
        what="four decisions from the worker",
    )
    rec = make_recorder()
    kit.drain_until(rec, lambda: kit.count() == len(records), what="every decision in SQL")

    rows = _rows(engine)
    assert set(rows) == {d["decision_id"] for d in records}
    for record in records:
        row = rows[record["decision_id"]]
        for column in COLUMNS_FROM_RECORD:
            assert row[column] == record[column], (column, row[column], record[column])
        assert orjson.loads(row["alternatives_json"]) == record["alternatives"]
        assert row["decided_at"] == datetime.fromtimestamp(record["decided_at"] / 1000, tz=UTC)
        assert row["decided_at"].tzinfo is not None

    by_task = {d["task_id"]: d for d in records}
    assert by_task["big"]["chosen_model"] == "opus" and by_task["big"]["outcome"] == "assigned"
    assert by_task["small"]["chosen_model"] == "haiku"
    assert by_task["waits"]["outcome"] == "await_slot"
    assert by_task["never"]["outcome"] == "unroutable"
    assert rows[by_task["big"]["decision_id"]]["account"] == "acct-a"


def test_reported_usage_becomes_actual_cost(
    r: redis.Redis,
    prefix: str,
    engine: Engine,
    kit: Any,
    scenario: list[dict[str, Any]],
    running_worker: Callable[[], Any],
    make_recorder: Callable[..., Recorder],
) -> None:
    keys = Keys(prefix)
    running_worker()
    kit.publish(scenario)
    wait_for(lambda: len(kit.records(keys.assign("o1"))) == 1, what="big assigned to opus")
    wait_for(lambda: len(kit.records(keys.assign("h1"))) == 1, what="small assigned to haiku")
    # usage first, then the recorder: a report may reach SQL before or after its decision
    Slot(r, slot_id="o1", model="opus", account="acct-a", keys=keys).free(
        completed={"task_id": "big", "input_tokens": 3000, "output_tokens": 700, "cost_usd": 0.0325}
    )
    Slot(r, slot_id="h1", model="haiku", keys=keys).free(
        completed={"task_id": "small", "input_tokens": 1000, "output_tokens": 200}
    )
    wait_for(lambda: len(kit.records(keys.usage)) == 2, what="two usage reports")
    rec = make_recorder()

    def usage_rows() -> int:
        with engine.connect() as conn:
            return len(conn.execute(select(usage)).all())

    kit.drain_until(rec, lambda: usage_rows() == 2 and kit.count() >= 4, what="usage and decisions in SQL")
    [big] = [d for d in decisions_for_task(engine, "big") if d.outcome == "assigned"]
    assert big.actual_cost_usd == pytest.approx(0.0325)
    assert (big.actual_input_tokens, big.actual_output_tokens, big.actual_cost_source) == (3000, 700, "reported")
    assert big.cost_basis == "actual" and big.completed_at is not None
    [small] = [d for d in decisions_for_task(engine, "small") if d.outcome == "assigned"]
    # no cost reported: priced from the catalogue (haiku: $1 in, $5 out per million tokens)
    assert small.actual_cost_usd == pytest.approx((1000 * 1.0 + 200 * 5.0) / 1e6)
    assert small.actual_cost_source == "catalogue"

    cells = {(c.model, c.layer): c for c in model_layer_matrix(engine, since=datetime(2000, 1, 1, tzinfo=UTC))}
    assert cells[("opus", "strategy")].basis == "actual"
    assert cells[("opus", "strategy")].total_usd == pytest.approx(0.0325)
    assert cells[("haiku", "chore")].decisions == 1

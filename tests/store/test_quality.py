"""The quality record on SQLite and PostgreSQL: outcomes stored with their decision, exactly once,
and the per-model figures on a seeded history checked against hand-computed ones."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
import redis
from sqlalchemy import Engine, select
from support.processes import wait_for

from store.quality import quality, suggestions
from store.records import BadRecord, decision_row, usage_row
from store.schema import usage
from store.writer import insert_decisions, insert_usage
from streams.clients import Dispatcher, Slot
from streams.keys import Keys
from worker.recorder import Recorder

pytestmark = pytest.mark.integration
SINCE = datetime(2000, 1, 1, tzinfo=UTC)
RECORDED_AT = datetime(2026, 12, 8, tzinfo=UTC)


def _decision(i: int, *, model: str, layer: str, level: int, est: float) -> dict[str, Any]:
    return {
        "decision_id": f"q-{i}",
        "task_id": f"task-{i}",
        "outcome": "assigned",
        "reason_code": "cheapest_capable",
        "reason": "seeded",
        "chosen_slot_id": f"slot-{i}",
        "chosen_model": model,
        "chosen_tier": 1,
        "account": "default",
        "layer": layer,
        "priority": 50,
        "ev": 0.5,
        "est_cost_usd": est,
        "decided_at": 1_700_000_000_000 + i,
        "alternatives": [],
        "attempt": 1,
        "requirement_level": level,
    }


def _usage(i: int, *, cost: float | None, **outcome: Any) -> dict[str, Any]:
    return {
        "decision_id": f"q-{i}",
        "task_id": f"task-{i}",
        "slot_id": f"slot-{i}",
        "model": "haiku",
        "account": "default",
        "cost_usd": cost,
        "event_id": f"9-{i}",
        "at": 1_700_000_100_000,
        **outcome,
    }


def _seed(engine: Engine) -> None:
    decided = [
        _decision(1, model="haiku", layer="docs", level=3, est=0.001),
        _decision(2, model="haiku", layer="docs", level=3, est=0.001),
        _decision(3, model="haiku", layer="docs", level=3, est=0.005),
        _decision(4, model="haiku", layer="docs", level=3, est=0.004),
        _decision(5, model="haiku", layer="code", level=5, est=0.001),
        _decision(6, model="sonnet", layer="docs", level=7, est=0.001),
    ]
    reported = [
        _usage(1, cost=0.01, outcome="succeeded", outcome_effect="none", attempt=1),
        _usage(2, cost=0.02, outcome="failed", failure="capability", outcome_effect="escalated", attempt=1),
        _usage(3, cost=None, outcome="failed", failure="transient", detail="429", outcome_effect="retried", attempt=1),
        # 4: no usage at all (unreported, at its estimate)
        _usage(5, cost=0.03, outcome="succeeded", outcome_effect="none", attempt=1),
        _usage(6, cost=0.1, outcome="succeeded", outcome_effect="none", attempt=2),
    ]
    now = RECORDED_AT
    with engine.begin() as conn:
        insert_decisions(conn, [decision_row(d, stream_id=None, recorded_at=now) for d in decided])
        insert_usage(conn, [usage_row(u, stream_id=None, recorded_at=now) for u in reported])
        # written again (a recorder redelivery): nothing doubles
        insert_usage(conn, [usage_row(u, stream_id=None, recorded_at=now) for u in reported])


def test_outcome_columns_round_trip(engine: Engine) -> None:
    _seed(engine)
    with engine.connect() as conn:
        rows = {r.decision_id: r for r in conn.execute(select(usage))}
    assert len(rows) == 5
    assert (rows["q-3"].outcome, rows["q-3"].failure, rows["q-3"].detail) == ("failed", "transient", "429")
    assert (rows["q-2"].outcome_effect, rows["q-6"].attempt) == ("escalated", 2)
    assert rows["q-1"].failure is None


def test_quality_per_model_and_layer_matches_hand_computed_figures(engine: Engine) -> None:
    _seed(engine)
    rows = {(r.model, r.group): r for r in quality(engine, axis="layer", since=SINCE)}
    docs = rows[("haiku", "docs")]
    assert (docs.tasks, docs.succeeded, docs.failed_capability, docs.failed_transient) == (4, 1, 1, 1)
    assert (docs.failed_abandoned, docs.unreported) == (0, 1)
    assert docs.success_rate == pytest.approx(1 / 3)
    # Wilson, n = 3, one success, z = 1.96: by hand 0.0615 .. 0.7923
    assert docs.success_low == pytest.approx(0.0615, abs=1e-4)
    assert docs.success_high == pytest.approx(0.7923, abs=1e-4)
    # every attempt's cost: 0.01 + 0.02 reported, 0.005 and 0.004 estimated; one success
    assert docs.cost_usd == pytest.approx(0.039)
    assert docs.usd_per_success == pytest.approx(0.039)
    code = rows[("haiku", "code")]
    assert (code.tasks, code.succeeded, code.usd_per_success) == (1, 1, pytest.approx(0.03))


def test_quality_per_requirement_level(engine: Engine) -> None:
    _seed(engine)
    rows = {(r.model, r.group): r for r in quality(engine, axis="level", since=SINCE)}
    assert set(rows) == {("haiku", "3"), ("haiku", "5"), ("sonnet", "7")}
    assert rows[("haiku", "3")].tasks == 4 and rows[("sonnet", "7")].usd_per_success == pytest.approx(0.1)


def test_suggestion_needs_enough_outcomes_and_a_low_upper_bound(engine: Engine) -> None:
    _seed(engine)
    rows = quality(engine, axis="layer", since=SINCE)
    assert suggestions(rows, min_success=0.7, min_outcomes=30) == []
    (only,) = suggestions(rows, min_success=0.95, min_outcomes=2)
    assert (only.model, only.layer) == ("haiku", "docs")


@pytest.mark.parametrize(
    "outcome",
    [
        {"outcome": "maybe"},
        {"outcome": "failed"},
        {"outcome": "succeeded", "failure": "transient"},
        {"outcome": "succeeded", "outcome_effect": "exploded"},
    ],
)
def test_bad_outcome_in_a_usage_record_is_a_bad_record(outcome: dict[str, Any]) -> None:
    with pytest.raises(BadRecord):
        usage_row(_usage(1, cost=0.1, **outcome), stream_id=None, recorded_at=RECORDED_AT)


def test_worker_outcomes_reach_sql_once_with_their_decisions(
    r: redis.Redis,
    prefix: str,
    engine: Engine,
    kit: Any,
    running_worker: Callable[[], Any],
    make_recorder: Callable[..., Recorder],
) -> None:
    """A capability failure on haiku, escalated to sonnet, which succeeds; the failure reported
    twice: SQL holds one outcome per attempt, each with its decision and attempt number."""
    keys = Keys(prefix)
    running_worker()
    haiku = Slot(r, slot_id="h1", model="haiku", keys=keys)
    sonnet = Slot(r, slot_id="s1", model="sonnet", keys=keys)
    haiku.free()
    sonnet.free()
    Dispatcher(r, keys).publish_task("t1", priority=50, layer="docs", requires={"coding": 3})
    wait_for(lambda: kit.records(keys.assign("h1")), what="t1 on haiku")
    for _ in range(2):
        haiku.free(completed={"task_id": "t1", "cost_usd": 0.01}, outcome="failed", failure="capability")
    wait_for(lambda: kit.records(keys.assign("s1")), what="t1 escalated to sonnet")
    sonnet.free(completed={"task_id": "t1", "cost_usd": 0.05}, outcome="succeeded")
    wait_for(lambda: len(kit.records(keys.usage)) == 2, what="two usage reports (the repeat is dropped)")
    rec = make_recorder()

    def outcomes() -> list[Any]:
        with engine.connect() as conn:
            return list(conn.execute(select(usage).order_by(usage.c.attempt)))

    kit.drain_until(rec, lambda: len(outcomes()) == 2 and kit.count() == 3, what="outcomes and decisions in SQL")
    first, second = outcomes()
    assert (first.model, first.outcome, first.failure, first.outcome_effect, first.attempt) == (
        "haiku",
        "failed",
        "capability",
        "escalated",
        1,
    )
    assert (second.model, second.outcome, second.attempt) == ("sonnet", "succeeded", 2)
    rows = {(q.model, q.group): q for q in quality(engine, axis="layer", since=SINCE)}
    assert rows[("haiku", "docs")].failed_capability == 1 and rows[("sonnet", "docs")].succeeded == 1

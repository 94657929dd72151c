"""An await_slot decision's queue place on the wire (PROTOCOL.md v1.1): optional `position` and
`eta_s` in its status message and decision record, written by the atomic step; absent elsewhere."""

from __future__ import annotations

import fakeredis
import orjson
import pytest

from router.values import ChosenSlot, Decision, Outcome, QueuePlace, ReasonCode, Task, Thresholds
from streams.commit import AtomicStep, Committer
from streams.keys import Keys
from streams.outputs import StreamCaps, add_effects, decision_record, status_message

TASK = Task(task_id="t1", priority=50, requires={}, fields={"task_id": "t1", "priority": 50, "requires": {}})


def _decision(*, place: QueuePlace | None, outcome: Outcome = Outcome.AWAIT_SLOT) -> Decision:
    chosen = ChosenSlot(slot_id="s1", model="haiku", account="default", tier=1) if outcome is Outcome.ASSIGNED else None
    return Decision(
        decision_id="7-0.1",
        task=TASK,
        outcome=outcome,
        reason_code=ReasonCode.NO_FREE_CAPABLE_SLOT,
        reason="waits",
        thresholds=Thresholds(ev=0.5, p50=None, p90=None),
        decided_at_ms=1000,
        chosen=chosen,
        queue_place=place,
    )


@pytest.mark.parametrize("eta_s", [241.5, None])
def test_a_waiting_tasks_status_and_record_carry_its_place(eta_s: float | None) -> None:
    decision = _decision(place=QueuePlace(position=3, eta_s=eta_s, waiting_since_ms=1000))
    for doc in (status_message(decision), decision_record(decision)):
        assert (doc["position"], doc["eta_s"]) == (3, eta_s)
    assert status_message(decision)["type"] == "await_slot"


def test_a_decision_without_a_place_has_neither_field() -> None:
    for decision in (_decision(place=None), _decision(place=None, outcome=Outcome.ASSIGNED)):
        assert "position" not in status_message(decision) and "eta_s" not in status_message(decision)
        assert "position" not in decision_record(decision)


def test_the_atomic_step_writes_the_place_to_both_streams() -> None:
    r = fakeredis.FakeRedis()
    keys = Keys("t:")
    step = AtomicStep(keys.state(dry_run=False).leader)
    decision = _decision(place=QueuePlace(position=2, eta_s=30.0, waiting_since_ms=1000))
    add_effects(step, keys, [decision], caps=StreamCaps(), dry_run=False)
    Committer(r).commit(step, fence=None)
    (status,) = [orjson.loads(fields[b"data"]) for _, fields in r.xrange(keys.status)]
    (record,) = [orjson.loads(fields[b"data"]) for _, fields in r.xrange(keys.decisions)]
    assert (status["position"], status["eta_s"], record["position"], record["eta_s"]) == (2, 30.0, 2, 30.0)

"""`slot.free.completed` outcomes (PROTOCOL.md v1.1): what is accepted and what is dead-lettered."""

from __future__ import annotations

from typing import Any

import fakeredis
import orjson
import pytest

from router.errors import InvalidEvent
from router.values import Failure, SlotFree, TaskResult
from streams.clients import Slot
from streams.codec import decode
from streams.keys import Keys
from streams.schema import parse_event

MODELS = frozenset({"haiku", "sonnet"})


def completed(**fields: Any) -> bytes:
    doc = {"type": "slot.free", "slot_id": "s1", "model": "haiku", "completed": {"task_id": "t1", **fields}}
    return orjson.dumps(doc)


def test_outcome_fields_are_parsed() -> None:
    event = parse_event(completed(outcome="failed", failure="capability", detail="tests fail"), models=MODELS)
    assert isinstance(event, SlotFree) and event.completed is not None
    assert event.completed.outcome is TaskResult.FAILED
    assert event.completed.failure is Failure.CAPABILITY
    assert event.completed.detail == "tests fail"


def test_no_outcome_is_unreported() -> None:
    event = parse_event(completed(cost_usd=0.1), models=MODELS)
    assert isinstance(event, SlotFree) and event.completed is not None
    assert event.completed.outcome is None and event.completed.failure is None


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"outcome": "maybe"}, "outcome must be one of succeeded, failed, got 'maybe'"),
        ({"outcome": "failed"}, "outcome 'failed' needs a failure"),
        ({"outcome": "succeeded", "failure": "transient"}, "only allowed with outcome 'failed'"),
        ({"outcome": "failed", "failure": "bored"}, "failure must be one of capability, transient, abandoned"),
        ({"outcome": 1}, "outcome must be one of"),
        ({"outcome": "succeeded", "detail": "x" * 201}, "detail must be at most 200 characters, got 201"),
        ({"outcome": "succeeded", "detail": 5}, "detail must be a string, got int"),
    ],
)
def test_bad_outcomes_are_refused_with_the_reason(fields: dict[str, Any], reason: str) -> None:
    with pytest.raises(InvalidEvent, match=r"slot\.free\.completed: ") as caught:
        parse_event(completed(**fields), models=MODELS)
    assert reason in str(caught.value)


def test_detail_of_200_characters_is_accepted() -> None:
    event = parse_event(completed(outcome="succeeded", detail="x" * 200), models=MODELS)
    assert isinstance(event, SlotFree) and event.completed is not None and event.completed.detail == "x" * 200


def test_slot_client_reports_the_outcome_inside_completed() -> None:
    r = fakeredis.FakeRedis()
    slot = Slot(r, slot_id="s1", model="haiku", keys=Keys("t:"))
    slot.free(completed={"task_id": "t1", "cost_usd": 0.5}, outcome="failed", failure="transient", detail="429")
    ((_, fields),) = r.xrange("t:events")
    doc = decode(fields[b"data"])
    assert doc["completed"] == {
        "task_id": "t1",
        "cost_usd": 0.5,
        "outcome": "failed",
        "failure": "transient",
        "detail": "429",
    }
    parse_event(fields[b"data"], models=MODELS)  # what the client sends, the router accepts


def test_slot_client_refuses_an_outcome_without_the_task() -> None:
    slot = Slot(fakeredis.FakeRedis(), slot_id="s1", model="haiku")
    with pytest.raises(ValueError, match="completed"):
        slot.free(outcome="succeeded")

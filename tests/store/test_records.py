"""Stream documents to rows: whatever a document holds, it becomes a row or a BadRecord (which the
recorder dead-letters with the message), never another exception, which would stop the recorder
on every retry of the same entry."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from store.records import BadRecord, decision_row, usage_row

NOW = datetime(2026, 11, 26, tzinfo=UTC)

DECISION: dict[str, Any] = {
    "decision_id": "d-1",
    "task_id": "t-1",
    "outcome": "assigned",
    "reason_code": "cheapest_capable",
    "reason": "r",
    "chosen_slot_id": "s-1",
    "chosen_model": "haiku",
    "chosen_tier": 1,
    "account": "default",
    "layer": "chore",
    "priority": 50,
    "ev": 0.5,
    "ev_p50": 0.4,
    "ev_p90": 0.9,
    "decided_at": 1_700_000_000_000,
    "alternatives": [],
}
USAGE: dict[str, Any] = {
    "event_id": "1-0",
    "decision_id": "d-1",
    "task_id": "t-1",
    "slot_id": "s-1",
    "model": "haiku",
    "input_tokens": 10,
    "output_tokens": 5,
    "at": 1_700_000_000_000,
}

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=300),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=6,
)


def _price(model: str, input_tokens: int, output_tokens: int) -> float | None:
    return 0.001 * (input_tokens + output_tokens)


def _row_or_bad_record(make: Any, doc: dict[str, Any], *, key: str) -> None:
    """Either a BadRecord with a reason, or a row of the document's own values (`key` is one the
    row must carry over), with every number finite and the stream id and time of recording."""
    try:
        row = make(doc)
    except BadRecord as exc:
        assert str(exc)  # the dead letter's reason
        return
    assert row[key] == doc[key]
    assert (row["stream_id"], row["recorded_at"]) == ("1-0", NOW)
    assert all(math.isfinite(value) for value in row.values() if isinstance(value, float)), row


@settings(max_examples=600, deadline=None, derandomize=True, database=None)
@given(changes=st.dictionaries(st.sampled_from(sorted(DECISION)), json_values, min_size=1, max_size=4))
def test_any_decision_document_becomes_a_row_or_a_bad_record(changes: dict[str, Any]) -> None:
    _row_or_bad_record(
        lambda d: decision_row(d, stream_id="1-0", recorded_at=NOW), {**DECISION, **changes}, key="decision_id"
    )


@settings(max_examples=600, deadline=None, derandomize=True, database=None)
@given(changes=st.dictionaries(st.sampled_from([*sorted(USAGE), "cost_usd"]), json_values, min_size=1, max_size=4))
def test_any_usage_document_becomes_a_row_or_a_bad_record(changes: dict[str, Any]) -> None:
    _row_or_bad_record(
        lambda d: usage_row(d, stream_id="1-0", recorded_at=NOW, pricer=_price), {**USAGE, **changes}, key="event_id"
    )


@pytest.mark.parametrize("at", [1e30, -1e30, 2**70, 253_402_300_800_000, -62_135_596_800_001])
def test_a_time_no_datetime_can_hold_is_a_bad_record(at: float) -> None:
    with pytest.raises(BadRecord, match=r"decided_at .* is not a time that can be stored"):
        decision_row({**DECISION, "decided_at": at}, stream_id="1-0", recorded_at=NOW)
    with pytest.raises(BadRecord, match=r"^at .* is not a time that can be stored"):
        usage_row({**USAGE, "at": at}, stream_id="1-0", recorded_at=NOW)


def test_the_extreme_times_a_datetime_holds_are_kept() -> None:
    first = decision_row({**DECISION, "decided_at": -62_135_596_800_000}, stream_id="1-0", recorded_at=NOW)
    last = decision_row({**DECISION, "decided_at": 253_402_300_799_999}, stream_id="1-0", recorded_at=NOW)
    assert first["decided_at"].year == 1 and last["decided_at"].year == 9999

"""streams/schema.py: every valid input event, and every kind of invalid one with its error text."""

from __future__ import annotations

import math
from typing import Any

import orjson
import pytest

from router.errors import InvalidEvent
from router.values import (
    QuotaUtilisation,
    SlotFree,
    SlotGone,
    SlotHeartbeat,
    TaskCancelled,
    TaskPending,
    TaskStarted,
    Usage,
)
from streams.schema import EVENT_TYPES, _Fields, parse_event

MODELS = frozenset({"haiku", "sonnet", "opus"})


def parse(doc: Any, **kw: Any) -> Any:
    return parse_event(orjson.dumps(doc), models=MODELS, **kw)


def rejected(raw: bytes | Any, **kw: Any) -> str:
    data = raw if isinstance(raw, bytes) else orjson.dumps(raw)
    with pytest.raises(InvalidEvent) as info:
        parse_event(data, models=MODELS, **kw)
    return str(info.value)


TASK = {"type": "task.pending", "task_id": "t1", "priority": 50, "requires": {"coding": 5}}


def with_(base: dict[str, Any], **changes: Any) -> dict[str, Any]:
    doc = dict(base)
    for key, value in changes.items():
        if value is _DROP:
            doc.pop(key, None)
        else:
            doc[key] = value
    return doc


_DROP = object()


# -- valid events -------------------------------------------------------------------------------


def test_task_pending_minimal_gets_defaults() -> None:
    ev = parse(TASK)
    assert isinstance(ev, TaskPending)
    t = ev.task
    assert (t.task_id, t.priority, dict(t.requires), t.layer) == ("t1", 50, {"coding": 5}, "unknown")
    assert t.ev is None and t.quest_priority is None and t.title is None and t.submitted_at_ms is None
    assert t.fields == {"task_id": "t1", "priority": 50, "requires": {"coding": 5}}  # as received, minus type


def test_task_pending_all_optional_fields_and_unknown_extras_are_kept() -> None:
    doc = with_(
        TASK,
        layer="design",
        ev=0.75,
        quest_priority=95,
        est_input_tokens=0,
        est_output_tokens=1000,
        title="x" * 200,
        submitted_at=1_700_000_000_000,
        extra={"nested": [1, 2]},
    )
    t = parse(doc).task
    assert (t.layer, t.ev, t.quest_priority, t.est_input_tokens, t.est_output_tokens) == ("design", 0.75, 95, 0, 1000)
    assert t.title == "x" * 200 and t.submitted_at_ms == 1_700_000_000_000
    assert t.fields["extra"] == {"nested": [1, 2]}
    assert "type" not in t.fields


def test_task_pending_requires_may_be_empty_and_ev_may_be_an_integer() -> None:
    t = parse(with_(TASK, requires={}, ev=2)).task
    assert dict(t.requires) == {} and t.ev == 2.0 and isinstance(t.ev, float)


@pytest.mark.parametrize(("priority"), [0, 100])
def test_task_pending_priority_bounds_are_inclusive(priority: int) -> None:
    assert parse(with_(TASK, priority=priority)).task.priority == priority


def test_task_id_of_128_characters_is_accepted() -> None:
    assert parse(with_(TASK, task_id="x" * 128)).task.task_id == "x" * 128


@pytest.mark.parametrize(
    ("doc", "expected"),
    [
        ({"type": "task.cancelled", "task_id": "t1"}, TaskCancelled(task_id="t1")),
        ({"type": "task.started", "task_id": "t1", "slot_id": "s1"}, TaskStarted(task_id="t1", slot_id="s1")),
        ({"type": "slot.heartbeat", "slot_id": "s1"}, SlotHeartbeat(slot_id="s1")),
        ({"type": "slot.gone", "slot_id": "s1"}, SlotGone(slot_id="s1")),
        ({"type": "slot.free", "slot_id": "s1", "model": "haiku"}, SlotFree(slot_id="s1", model="haiku")),
        (
            {"type": "slot.free", "slot_id": "s1", "model": "opus", "account": "acct-2"},
            SlotFree(slot_id="s1", model="opus", account="acct-2"),
        ),
        (
            {
                "type": "slot.free",
                "slot_id": "s1",
                "model": "opus",
                "completed": {"task_id": "t9", "input_tokens": 10, "output_tokens": 2, "cost_usd": 0.5},
            },
            SlotFree(
                slot_id="s1",
                model="opus",
                completed=Usage(task_id="t9", input_tokens=10, output_tokens=2, cost_usd=0.5),
            ),
        ),
        (
            {"type": "slot.free", "slot_id": "s1", "model": "opus", "completed": {"task_id": "t9"}},
            SlotFree(slot_id="s1", model="opus", completed=Usage(task_id="t9")),
        ),
        (
            {"type": "quota.utilisation", "model": "sonnet", "utilisation": 1},
            QuotaUtilisation(model="sonnet", utilisation=1.0),
        ),
        (
            {"type": "quota.utilisation", "model": "sonnet", "utilisation": 0.25, "account": "a"},
            QuotaUtilisation(model="sonnet", utilisation=0.25, account="a"),
        ),
    ],
)
def test_valid_events(doc: dict[str, Any], expected: Any) -> None:
    assert parse(doc) == expected


def test_event_types() -> None:
    assert {
        "task.pending",
        "task.cancelled",
        "slot.free",
        "slot.heartbeat",
        "slot.gone",
        "quota.utilisation",
    } <= EVENT_TYPES


# -- invalid events -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        # not JSON
        (b"{", "not valid JSON: "),
        (b"", "not valid JSON: "),
        (b"\xff\xfe", "not valid JSON: "),
        (b'{"type": "task.pending", "ev": NaN}', "not valid JSON: "),  # NaN is not JSON
        (b'{"type": "task.pending", "ev": 1e999}', "not valid JSON: "),  # nor is infinity
        # not an object
        (b"[1, 2]", "must be a JSON object, got list"),
        (b'"task.pending"', "must be a JSON object, got str"),
        (b"42", "must be a JSON object, got int"),
        (b"null", "must be a JSON object, got NoneType"),
    ],
)
def test_rejected_raw(raw: bytes, message: str) -> None:
    assert rejected(raw).startswith(message)


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        # unknown or missing type
        ({"type": "task.done", "task_id": "t"}, "unknown or missing type 'task.done'; expected one of "),
        ({"task_id": "t"}, "unknown or missing type None; expected one of "),
        ({"type": 7}, "unknown or missing type 7; expected one of "),
        # missing required fields
        (with_(TASK, task_id=_DROP), "task.pending: missing required field 'task_id'"),
        (with_(TASK, task_id=None), "task.pending: missing required field 'task_id'"),
        (with_(TASK, priority=_DROP), "task.pending: missing required field 'priority'"),
        (with_(TASK, requires=_DROP), "task.pending: missing required field 'requires' (use {} for none)"),
        ({"type": "task.cancelled"}, "task.cancelled: missing required field 'task_id'"),
        ({"type": "task.started", "task_id": "t"}, "task.started: missing required field 'slot_id'"),
        ({"type": "slot.free", "model": "haiku"}, "slot.free: missing required field 'slot_id'"),
        ({"type": "slot.free", "slot_id": "s"}, "slot.free: missing required field 'model'"),
        ({"type": "slot.heartbeat"}, "slot.heartbeat: missing required field 'slot_id'"),
        ({"type": "slot.gone"}, "slot.gone: missing required field 'slot_id'"),
        ({"type": "quota.utilisation", "model": "haiku"}, "quota.utilisation: missing required field 'utilisation'"),
        ({"type": "quota.utilisation", "utilisation": 0.5}, "quota.utilisation: missing required field 'model'"),
        (
            {"type": "slot.free", "slot_id": "s", "model": "haiku", "completed": {"input_tokens": 1}},
            "slot.free.completed: missing required field 'task_id'",
        ),
        # wrong type
        (with_(TASK, task_id=12), "task.pending: task_id must be a string, got int"),
        (with_(TASK, priority="50"), "task.pending: priority must be an integer, got str"),
        (with_(TASK, priority=50.0), "task.pending: priority must be an integer, got float"),
        (with_(TASK, requires=["coding"]), "task.pending: requires must be an object of capability -> 0..10, got list"),
        (with_(TASK, requires={"coding": "5"}), "task.pending: requires.coding must be an integer 0..10, got '5'"),
        (with_(TASK, ev="high"), "task.pending: ev must be a finite number, got 'high'"),
        (with_(TASK, layer=3), "task.pending: layer must be a string, got int"),
        (with_(TASK, title=5), "task.pending: title must be a string of at most 200 characters"),
        (with_(TASK, est_input_tokens=1.5), "task.pending: est_input_tokens must be an integer, got float"),
        (with_(TASK, submitted_at="2025-01-01"), "task.pending: submitted_at must be an integer, got str"),
        ({"type": "slot.free", "slot_id": ["s"], "model": "haiku"}, "slot.free: slot_id must be a string, got list"),
        (
            {"type": "slot.free", "slot_id": "s", "model": "haiku", "completed": "t1"},
            "slot.free: completed must be an object, got str",
        ),
        (
            {"type": "slot.free", "slot_id": "s", "model": "haiku", "completed": {"task_id": "t", "cost_usd": "1"}},
            "slot.free.completed: cost_usd must be a finite number, got '1'",
        ),
        (
            {"type": "quota.utilisation", "model": "haiku", "utilisation": "0.5"},
            "quota.utilisation: utilisation must be a finite number, got '0.5'",
        ),
        # bool is not an integer nor a number
        (with_(TASK, priority=True), "task.pending: priority must be an integer, got bool"),
        (with_(TASK, quest_priority=False), "task.pending: quest_priority must be an integer, got bool"),
        (with_(TASK, requires={"coding": True}), "task.pending: requires.coding must be an integer 0..10, got True"),
        (with_(TASK, ev=True), "task.pending: ev must be a finite number, got True"),
        (
            {"type": "quota.utilisation", "model": "haiku", "utilisation": True},
            "quota.utilisation: utilisation must be a finite number, got True",
        ),
        # out of range
        (with_(TASK, priority=101), "task.pending: priority must be 0..100, got 101"),
        (with_(TASK, priority=-1), "task.pending: priority must be 0..100, got -1"),
        (with_(TASK, quest_priority=101), "task.pending: quest_priority must be 0..100, got 101"),
        (with_(TASK, requires={"coding": 11}), "task.pending: requires.coding must be an integer 0..10, got 11"),
        (with_(TASK, requires={"coding": -1}), "task.pending: requires.coding must be an integer 0..10, got -1"),
        (with_(TASK, requires={"": 1}), "task.pending: capability name must be 1..64 characters"),
        (with_(TASK, requires={"x" * 65: 1}), "task.pending: capability name must be 1..64 characters"),
        (
            with_(TASK, requires={f"c{i}": 1 for i in range(33)}),
            "task.pending: requires has 33 capabilities, at most 32",
        ),
        (with_(TASK, task_id=""), "task.pending: task_id must be 1..128 characters, got 0"),
        (with_(TASK, task_id="x" * 129), "task.pending: task_id must be 1..128 characters, got 129"),
        (with_(TASK, title="x" * 201), "task.pending: title must be a string of at most 200 characters"),
        (with_(TASK, layer=""), "task.pending: layer must be 1..64 characters, got 0"),
        (with_(TASK, est_output_tokens=-1), "task.pending: est_output_tokens must be 0..1000000000, got -1"),
        (with_(TASK, submitted_at=-5), "task.pending: submitted_at must be 0..9007199254740992, got -5"),
        (
            {"type": "slot.free", "slot_id": "s" * 129, "model": "haiku"},
            "slot.free: slot_id must be 1..128 characters, got 129",
        ),
        (
            {"type": "quota.utilisation", "model": "haiku", "utilisation": 1.01},
            "quota.utilisation: utilisation must be 0.0..1.0, got 1.01",
        ),
        (
            {"type": "quota.utilisation", "model": "haiku", "utilisation": -0.1},
            "quota.utilisation: utilisation must be 0.0..1.0, got -0.1",
        ),
        (
            {"type": "slot.free", "slot_id": "s", "model": "haiku", "completed": {"task_id": "t", "input_tokens": -3}},
            "slot.free.completed: input_tokens must be 0..1000000000, got -3",
        ),
        # unknown model
        (
            {"type": "slot.free", "slot_id": "s", "model": "llama"},
            "slot.free: unknown model 'llama'; the catalogue has haiku, opus, sonnet",
        ),
        (
            {"type": "quota.utilisation", "model": "gpt-9", "utilisation": 0.1},
            "quota.utilisation: unknown model 'gpt-9'; the catalogue has haiku, opus, sonnet",
        ),
    ],
)
def test_rejected_with_reason(doc: dict[str, Any], message: str) -> None:
    got = rejected(doc)
    if message.endswith("expected one of "):
        assert got.startswith(message)
        assert "task.pending" in got and "quota.utilisation" in got
    else:
        assert got == message


def test_oversized_entry_is_rejected_before_parsing() -> None:
    doc = with_(TASK, title="x" * 100)
    raw = orjson.dumps(doc)
    assert rejected(raw, max_bytes=len(raw) - 1) == f"entry is {len(raw)} bytes, over the {len(raw) - 1}-byte limit"
    assert parse_event(raw, models=MODELS, max_bytes=len(raw)).task.task_id == "t1"  # at the limit: fine


def test_default_size_limit_is_64_kib() -> None:
    raw = orjson.dumps(with_(TASK, blob="x" * (64 * 1024)))
    assert rejected(raw) == f"entry is {len(raw)} bytes, over the 65536-byte limit"
    junk = b"{" * (64 * 1024 + 1)  # oversized and not JSON: the size is reported
    assert rejected(junk).startswith("entry is 65537 bytes")


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_number_is_rejected_by_the_field_check(bad: float) -> None:
    # orjson refuses NaN/Infinity on the wire; the field check refuses them too if they get that far
    with pytest.raises(InvalidEvent, match=r"task.pending: ev must be a finite number, got (nan|inf|-inf)"):
        _Fields("task.pending", {"ev": bad}).number("ev")

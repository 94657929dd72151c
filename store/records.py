"""Turning stream documents into table rows, with the checks that decide what is malformed.

A record that fails here is dead-lettered by the recorder rather than retried: no amount of
waiting will make it valid, and it must not hold up the decisions behind it."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

import orjson

from router.errors import RouterError
from store.db import from_epoch_ms
from store.schema import DECISION_ID_LEN, ENTRY_ID_LEN, ID_LEN

OUTCOMES = frozenset({"assigned", "await_slot", "unroutable", "failed"})

Row = dict[str, Any]
# Prices a usage report that gave tokens but no cost: (model, input_tokens, output_tokens) -> USD.
Pricer = Callable[[str, int, int], float | None]


class BadRecord(RouterError):
    """A stream document that cannot become a row; the message is the dead-letter reason."""


def decision_row(doc: Any, *, stream_id: str | None, recorded_at: datetime) -> Row:
    if not isinstance(doc, Mapping):
        raise BadRecord(f"decision record is {type(doc).__name__}, not an object")
    outcome = _text(doc, "outcome", 16)
    if outcome not in OUTCOMES:
        raise BadRecord(f"outcome {outcome!r} is not one of {sorted(OUTCOMES)}")
    alternatives = doc.get("alternatives", [])
    if not isinstance(alternatives, list):
        raise BadRecord("alternatives is not a list")
    return {
        "decision_id": _text(doc, "decision_id", DECISION_ID_LEN),
        "task_id": _text(doc, "task_id", ID_LEN),
        "chosen_slot_id": _opt_text(doc, "chosen_slot_id", ID_LEN),
        "chosen_model": _opt_text(doc, "chosen_model", ID_LEN),
        "alternatives_json": orjson.dumps(alternatives).decode(),
        "reason": _text(doc, "reason", None, empty_ok=True),
        "decided_at": _epoch_ms(doc, "decided_at"),
        "outcome": outcome,
        "reason_code": _text(doc, "reason_code", 48),
        "chosen_tier": _opt_int(doc, "chosen_tier", 0, 32_767),
        "account": _opt_text(doc, "account", ID_LEN),
        "layer": _opt_text(doc, "layer", ID_LEN) or "unknown",
        "priority": _int(doc, "priority", 0, 100),
        "quest_priority": _opt_int(doc, "quest_priority", 0, 100),
        "title": _opt_text(doc, "title", None),
        "ev": _req_number(doc, "ev"),
        "ev_p50": _number(doc, "ev_p50"),
        "ev_p90": _number(doc, "ev_p90"),
        "override": bool(doc.get("override", False)),
        "min_tier": _opt_int(doc, "min_tier", 0, 32_767),
        "est_cost_usd": _number(doc, "est_cost_usd"),
        "dry_run": bool(doc.get("dry_run", False)),
        "event_id": _opt_text(doc, "event_id", ENTRY_ID_LEN),
        "policy_version": _opt_text(doc, "policy_version", 64) or "",
        "stream_id": stream_id,
        "recorded_at": recorded_at,
        **_given(
            attempt=_opt_int(doc, "attempt", 1, 32_767),
            previous_decision_id=_opt_text(doc, "previous_decision_id", DECISION_ID_LEN),
            requirement_level=_opt_int(doc, "requirement_level", 0, 10),
        ),
    }


def usage_row(doc: Any, *, stream_id: str | None, recorded_at: datetime, pricer: Pricer | None = None) -> Row:
    if not isinstance(doc, Mapping):
        raise BadRecord(f"usage record is {type(doc).__name__}, not an object")
    model = _text(doc, "model", ID_LEN)
    input_tokens = _opt_int(doc, "input_tokens", 0, 2**62)
    output_tokens = _opt_int(doc, "output_tokens", 0, 2**62)
    cost = _number(doc, "cost_usd")
    source: str | None = "reported" if cost is not None else None
    if cost is None and pricer is not None and (input_tokens is not None or output_tokens is not None):
        cost = pricer(model, input_tokens or 0, output_tokens or 0)
        source = "catalogue" if cost is not None else None
    return {
        "event_id": _text(doc, "event_id", ENTRY_ID_LEN),
        "decision_id": _opt_text(doc, "decision_id", DECISION_ID_LEN),
        "task_id": _text(doc, "task_id", ID_LEN),
        "slot_id": _text(doc, "slot_id", ID_LEN),
        "model": model,
        "account": _opt_text(doc, "account", ID_LEN) or "default",
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "cost_usd": cost,
        "cost_source": source,
        "reported_at": _epoch_ms(doc, "at"),
        "recorded_at": recorded_at,
        "stream_id": stream_id,
        **_outcome(doc),
    }


TASK_OUTCOMES = frozenset({"succeeded", "failed"})
FAILURES = frozenset({"capability", "transient", "abandoned"})
OUTCOME_EFFECTS = frozenset({"escalated", "retried", "failed", "none", "ignored"})


def _outcome(doc: Mapping[str, Any]) -> Row:
    """The outcome columns of a usage row (all NULL for a report without an outcome)."""
    outcome = _opt_choice(doc, "outcome", TASK_OUTCOMES)
    failure = _opt_choice(doc, "failure", FAILURES)
    if (outcome == "failed") != (failure is not None):
        raise BadRecord("failure must be given exactly when outcome is 'failed'")
    return _given(
        outcome=outcome,
        failure=failure,
        detail=_opt_text(doc, "detail", 200),
        outcome_effect=_opt_choice(doc, "outcome_effect", OUTCOME_EFFECTS),
        attempt=_opt_int(doc, "attempt", 1, 32_767),
    )


def _given(**columns: Any) -> Row:
    """The v1.1 columns a record has values for: a record without them makes the same row as
    before migration 0004 (the writer stores a column a row leaves out as NULL)."""
    return {name: value for name, value in columns.items() if value is not None}


def _opt_choice(doc: Mapping[str, Any], key: str, allowed: frozenset[str]) -> str | None:
    value = _opt_text(doc, key, 16)
    if value is not None and value not in allowed:
        raise BadRecord(f"{key} {value!r} is not one of {sorted(allowed)}"[:300])
    return value


# -- field checks -------------------------------------------------------------------------------


def _text(doc: Mapping[str, Any], key: str, max_len: int | None, *, empty_ok: bool = False) -> str:
    value = doc.get(key)
    if not isinstance(value, str) or (not value and not empty_ok):
        raise BadRecord(f"{key} must be a non-empty string, got {value!r}"[:300])
    if max_len is not None and len(value) > max_len:
        raise BadRecord(f"{key} is longer than {max_len} characters")
    return value


def _opt_text(doc: Mapping[str, Any], key: str, max_len: int | None) -> str | None:
    return None if doc.get(key) is None else _text(doc, key, max_len, empty_ok=True)


def _int(doc: Mapping[str, Any], key: str, low: int, high: int) -> int:
    value = doc.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise BadRecord(f"{key} must be an integer {low}-{high}, got {value!r}"[:300])
    return value


def _opt_int(doc: Mapping[str, Any], key: str, low: int, high: int) -> int | None:
    return None if doc.get(key) is None else _int(doc, key, low, high)


def _number(doc: Mapping[str, Any], key: str) -> float | None:
    return None if doc.get(key) is None else _req_number(doc, key)


def _epoch_ms(doc: Mapping[str, Any], key: str) -> datetime:
    """A time in epoch milliseconds, as a UTC datetime; one outside what a datetime holds (years
    1-9999) is a bad record, not a crash."""
    value = _req_number(doc, key)
    try:
        return from_epoch_ms(value)
    except (OverflowError, OSError, ValueError):
        raise BadRecord(f"{key} {value!r} is not a time that can be stored (epoch milliseconds)"[:300]) from None


def _req_number(doc: Mapping[str, Any], key: str) -> float:
    value = doc.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise BadRecord(f"{key} must be a finite number, got {value!r}"[:300])
    return float(value)

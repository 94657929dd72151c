"""Strict validation of input events: the JSON of one `router:events` entry becomes a router value,
or InvalidEvent says exactly what is wrong (it becomes the dead-letter entry's `error`)."""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Mapping
from typing import Any, Final

import orjson

from router.errors import InvalidEvent
from router.values import (
    DEFAULT_ACCOUNT,
    Event,
    Failure,
    QuotaUtilisation,
    SlotFree,
    SlotGone,
    SlotHeartbeat,
    Task,
    TaskCancelled,
    TaskPending,
    TaskResult,
    TaskStarted,
    Usage,
)

DEFAULT_MAX_BYTES: Final = 64 * 1024
MAX_ID_CHARS: Final = 128
MAX_TITLE_CHARS: Final = 200
MAX_NAME_CHARS: Final = 64
MAX_REQUIRES: Final = 32
MAX_TOKENS: Final = 10**9
MAX_DETAIL_CHARS: Final = 200


def parse_event(raw: bytes, *, models: Collection[str], max_bytes: int = DEFAULT_MAX_BYTES) -> Event:
    """Validate one entry's `data` and build the event; raises InvalidEvent with the reason."""
    if len(raw) > max_bytes:
        raise InvalidEvent(f"entry is {len(raw)} bytes, over the {max_bytes}-byte limit")
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidEvent(f"not valid JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise InvalidEvent(f"must be a JSON object, got {type(doc).__name__}")
    kind = doc.get("type")
    parser = _PARSERS.get(kind) if isinstance(kind, str) else None
    if parser is None:
        raise InvalidEvent(f"unknown or missing type {kind!r}; expected one of {', '.join(sorted(_PARSERS))}")
    return parser(_Fields(str(kind), doc), models)


class _Fields:
    """Typed access to one event's fields; every failure names the event type and the field."""

    def __init__(self, kind: str, doc: Mapping[str, Any]) -> None:
        self.kind = kind
        self.doc = doc

    def fail(self, message: str) -> InvalidEvent:
        return InvalidEvent(f"{self.kind}: {message}")

    def string(self, name: str, *, max_chars: int, required: bool = True, default: str | None = None) -> str | None:
        value = self.doc.get(name)
        if value is None:
            if required:
                raise self.fail(f"missing required field {name!r}")
            return default
        if not isinstance(value, str):
            raise self.fail(f"{name} must be a string, got {type(value).__name__}")
        if not 1 <= len(value) <= max_chars:
            raise self.fail(f"{name} must be 1..{max_chars} characters, got {len(value)}")
        return value

    def required_string(self, name: str, *, max_chars: int = MAX_ID_CHARS) -> str:
        value = self.string(name, max_chars=max_chars)
        assert value is not None
        return value

    def integer(self, name: str, *, low: int, high: int, required: bool = False) -> int | None:
        return _integer(self, self.doc, name, low=low, high=high, required=required)

    def number(
        self, name: str, *, low: float | None = None, high: float | None = None, required: bool = False
    ) -> float | None:
        return _number(self, self.doc, name, low=low, high=high, required=required)

    def model(self, models: Collection[str]) -> str:
        model = self.required_string("model")
        if model not in models:
            raise self.fail(f"unknown model {model!r}; the catalogue has {', '.join(sorted(models))}")
        return model


def _integer(f: _Fields, doc: Mapping[str, Any], name: str, *, low: int, high: int, required: bool) -> int | None:
    value = doc.get(name)
    if value is None:
        if required:
            raise f.fail(f"missing required field {name!r}")
        return None
    if not isinstance(value, int) or isinstance(value, bool):
        raise f.fail(f"{name} must be an integer, got {type(value).__name__}")
    if not low <= value <= high:
        raise f.fail(f"{name} must be {low}..{high}, got {value}")
    return value


def _number(
    f: _Fields, doc: Mapping[str, Any], name: str, *, low: float | None, high: float | None, required: bool
) -> float | None:
    value = doc.get(name)
    if value is None:
        if required:
            raise f.fail(f"missing required field {name!r}")
        return None
    if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
        raise f.fail(f"{name} must be a finite number, got {value!r}")
    if (low is not None and value < low) or (high is not None and value > high):
        raise f.fail(f"{name} must be {low}..{high}, got {value}")
    return float(value)


def _requires(f: _Fields) -> dict[str, int]:
    value = f.doc.get("requires")
    if value is None:
        raise f.fail("missing required field 'requires' (use {} for none)")
    if not isinstance(value, dict):
        raise f.fail(f"requires must be an object of capability -> 0..10, got {type(value).__name__}")
    if len(value) > MAX_REQUIRES:
        raise f.fail(f"requires has {len(value)} capabilities, at most {MAX_REQUIRES}")
    out = {}
    for name, level in value.items():
        if not 1 <= len(name) <= MAX_NAME_CHARS:
            raise f.fail(f"capability name must be 1..{MAX_NAME_CHARS} characters")
        if not isinstance(level, int) or isinstance(level, bool) or not 0 <= level <= 10:
            raise f.fail(f"requires.{name} must be an integer 0..10, got {level!r}")
        out[name] = level
    return out


def _task_pending(f: _Fields, models: Collection[str]) -> Event:
    task = Task(
        task_id=f.required_string("task_id"),
        priority=f.integer("priority", low=0, high=100, required=True) or 0,
        requires=_requires(f),
        layer=f.string("layer", max_chars=MAX_NAME_CHARS, required=False, default="unknown") or "unknown",
        ev=f.number("ev"),
        quest_priority=f.integer("quest_priority", low=0, high=100),
        est_input_tokens=f.integer("est_input_tokens", low=0, high=MAX_TOKENS),
        est_output_tokens=f.integer("est_output_tokens", low=0, high=MAX_TOKENS),
        title=_title(f),
        submitted_at_ms=f.integer("submitted_at", low=0, high=2**53),
        fields={k: v for k, v in f.doc.items() if k != "type"},
    )
    return TaskPending(task=task)


def _title(f: _Fields) -> str | None:
    value = f.doc.get("title")
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > MAX_TITLE_CHARS:
        raise f.fail(f"title must be a string of at most {MAX_TITLE_CHARS} characters")
    return value


def _task_cancelled(f: _Fields, models: Collection[str]) -> Event:
    return TaskCancelled(task_id=f.required_string("task_id"))


def _task_started(f: _Fields, models: Collection[str]) -> Event:
    return TaskStarted(task_id=f.required_string("task_id"), slot_id=f.required_string("slot_id"))


def _slot_free(f: _Fields, models: Collection[str]) -> Event:
    return SlotFree(
        slot_id=f.required_string("slot_id"),
        model=f.model(models),
        account=f.string("account", max_chars=MAX_ID_CHARS, required=False, default=DEFAULT_ACCOUNT) or DEFAULT_ACCOUNT,
        completed=_completed(f),
    )


def _completed(f: _Fields) -> Usage | None:
    value = f.doc.get("completed")
    if value is None:
        return None
    if not isinstance(value, dict):
        raise f.fail(f"completed must be an object, got {type(value).__name__}")
    inner = _Fields(f"{f.kind}.completed", value)
    outcome, failure = _outcome(inner)
    return Usage(
        task_id=inner.required_string("task_id"),
        input_tokens=inner.integer("input_tokens", low=0, high=MAX_TOKENS),
        output_tokens=inner.integer("output_tokens", low=0, high=MAX_TOKENS),
        cost_usd=inner.number("cost_usd", low=0.0, high=1e6),
        outcome=outcome,
        failure=failure,
        detail=_detail(inner),
    )


def _outcome(f: _Fields) -> tuple[TaskResult | None, Failure | None]:
    """`outcome` and `failure` (v1.1): a failure kind exactly when the outcome is `failed`."""
    outcome_text = _choice(f, "outcome", _OUTCOMES)
    failure_text = _choice(f, "failure", _FAILURES)
    outcome = None if outcome_text is None else TaskResult(outcome_text)
    failure = None if failure_text is None else Failure(failure_text)
    if outcome is TaskResult.FAILED and failure is None:
        raise f.fail(f"outcome 'failed' needs a failure: one of {', '.join(_FAILURES)}")
    if failure is not None and outcome is not TaskResult.FAILED:
        raise f.fail(f"failure {failure_text!r} is only allowed with outcome 'failed'")
    return outcome, failure


_OUTCOMES: Final = tuple(m.value for m in TaskResult)
_FAILURES: Final = tuple(m.value for m in Failure)


def _choice(f: _Fields, name: str, allowed: tuple[str, ...]) -> str | None:
    value = f.doc.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or value not in allowed:
        raise f.fail(f"{name} must be one of {', '.join(allowed)}, got {value!r}"[:300])
    return value


def _detail(f: _Fields) -> str | None:
    value = f.doc.get("detail")
    if value is None:
        return None
    if not isinstance(value, str):
        raise f.fail(f"detail must be a string, got {type(value).__name__}")
    if len(value) > MAX_DETAIL_CHARS:
        raise f.fail(f"detail must be at most {MAX_DETAIL_CHARS} characters, got {len(value)}")
    return value


def _slot_heartbeat(f: _Fields, models: Collection[str]) -> Event:
    return SlotHeartbeat(slot_id=f.required_string("slot_id"))


def _slot_gone(f: _Fields, models: Collection[str]) -> Event:
    return SlotGone(slot_id=f.required_string("slot_id"))


def _quota(f: _Fields, models: Collection[str]) -> Event:
    utilisation = f.number("utilisation", low=0.0, high=1.0, required=True)
    assert utilisation is not None
    return QuotaUtilisation(
        model=f.model(models),
        utilisation=utilisation,
        account=f.string("account", max_chars=MAX_ID_CHARS, required=False, default=DEFAULT_ACCOUNT) or DEFAULT_ACCOUNT,
    )


_PARSERS: Final[dict[str, Callable[[_Fields, Collection[str]], Event]]] = {
    "task.pending": _task_pending,
    "task.cancelled": _task_cancelled,
    "task.started": _task_started,
    "slot.free": _slot_free,
    "slot.heartbeat": _slot_heartbeat,
    "slot.gone": _slot_gone,
    "quota.utilisation": _quota,
}

EVENT_TYPES = frozenset(_PARSERS)

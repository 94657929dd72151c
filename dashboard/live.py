"""What the router holds right now, read from its ledger snapshot in Redis (never from the worker
itself: the snapshot is written in the same atomic step as the decisions, so it is consistent)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import orjson
import redis

from router.slots import split_utilisation_key
from streams.keys import Keys

# The page lists the longest-waiting tasks; the count and the oldest age cover the rest.
SHOWN_WAITING = 50
SCAN_COUNT = 1000
_N = TypeVar("_N", int, float)


@dataclass(frozen=True, slots=True, kw_only=True)
class WaitingTask:
    """A waiting task as the page lists it, read from the snapshot (None: the entry lacked it)."""

    task_id: str
    layer: str
    priority: int | None
    ev: float | None
    since_ms: int | None
    title: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class SlotView:
    """A slot as the page shows it, with its pool's quota utilisation when one was reported."""

    slot_id: str
    model: str
    account: str
    state: str  # free | busy | gone
    since_ms: int | None
    last_heard_ms: int | None
    task_id: str | None
    utilisation: float | None


@dataclass(frozen=True, slots=True, kw_only=True)
class LiveState:
    """What the router holds right now: how many tasks wait, the longest waiting, every slot."""

    waiting_count: int
    oldest_waiting: list[WaitingTask]  # longest first, at most SHOWN_WAITING
    slots: list[SlotView]  # by model, account, slot id


def read_live(r: redis.Redis, keys: Keys) -> LiveState:
    state = keys.state(dry_run=False)
    waiting = [_waiting(raw) for _, raw in r.hscan_iter(state.waiting, count=SCAN_COUNT)]
    waiting.sort(key=lambda w: (w.since_ms is None, w.since_ms or 0, w.task_id))
    utilisation = _utilisation(r.hgetall(state.utilisation))
    slots = [_slot(raw, utilisation) for _, raw in r.hscan_iter(state.slots, count=SCAN_COUNT)]
    slots.sort(key=lambda s: (s.model, s.account, s.slot_id))
    return LiveState(waiting_count=len(waiting), oldest_waiting=waiting[:SHOWN_WAITING], slots=slots)


def _waiting(raw: bytes | str) -> WaitingTask:
    doc = _load(raw)
    task = doc.get("task")
    if not isinstance(task, dict):
        task = {}
    return WaitingTask(
        task_id=str(task.get("task_id", "?")),
        layer=str(task.get("layer") or "unknown"),
        priority=_int(task.get("priority")),
        ev=_float(doc.get("ev")),
        since_ms=_int(doc.get("since_ms")),
        title=task.get("title") if isinstance(task.get("title"), str) else None,
    )


def _slot(raw: bytes | str, utilisation: dict[tuple[str, str], float]) -> SlotView:
    doc = _load(raw)
    model, account = str(doc.get("model", "?")), str(doc.get("account", "default"))
    return SlotView(
        slot_id=str(doc.get("slot_id", "?")),
        model=model,
        account=account,
        state=str(doc.get("state", "?")),
        since_ms=_int(doc.get("since_ms")),
        last_heard_ms=_int(doc.get("last_heard_ms")),
        task_id=doc.get("task_id") if isinstance(doc.get("task_id"), str) else None,
        utilisation=utilisation.get((account, model)),
    )


def _utilisation(raw: dict[Any, Any]) -> dict[tuple[str, str], float]:
    out: dict[tuple[str, str], float] = {}
    for key, value in raw.items():
        # keys and values are the router's, but a hand-edited hash may hold any bytes
        text = key.decode(errors="replace") if isinstance(key, bytes) else str(key)
        number = _float(value.decode(errors="replace") if isinstance(value, bytes) else value)
        if number is not None:
            out[split_utilisation_key(text)] = number
    return out


def _load(raw: bytes | str) -> dict[str, Any]:
    # A snapshot entry the dashboard cannot read is shown with placeholders, not a 500.
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return {}
    return doc if isinstance(doc, dict) else {}


def _int(value: Any) -> int | None:
    return _number(value, int)


def _float(value: Any) -> float | None:
    return _number(value, float)


def _number(value: Any, kind: Callable[[Any], _N]) -> _N | None:
    """`value` as an int or a float, or None when it is not one (a bool is not a number here)."""
    if value is None or isinstance(value, bool):
        return None
    try:
        return kind(value)
    except (TypeError, ValueError, OverflowError):
        return None

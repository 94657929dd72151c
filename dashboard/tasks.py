"""One task's state for `GET /api/tasks/{task_id}` and `router explain`: waiting (with its queue
position and ETA), assigned, or what its last decision says, from the ledger snapshot and the
decisions about it."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote_to_bytes

import redis

from dashboard.format import eta, utc
from dashboard.queue import QueueUnavailable
from router.values import QueuePlace
from streams.codec import decode
from streams.keys import Keys

MAX_TASK_ID_CHARS = 128  # the wire contract's limit (PROTOCOL.md)
# A task that left the queue with no later decision was cancelled: only a cancellation ends a
# wait without one. Other outcomes name their state.
_STATE_AFTER = {"await_slot": "cancelled", "assigned": "assigned", "unroutable": "unroutable"}


class BadTaskId(ValueError):
    """A task id no task can have; the message says why (an HTTP 400)."""


def task_id_from_raw_path(raw_path: bytes, route_prefix: str) -> str:
    """The task id of a request path, checked against the wire contract: percent-decoded as bytes
    and then as strict UTF-8 (a server's own decoding would turn bad bytes into U+FFFD and make a
    different id of them), 1-128 characters."""
    encoded = raw_path[len(route_prefix.encode()) :]
    try:
        task_id = unquote_to_bytes(encoded).decode("utf-8")
    except UnicodeDecodeError:
        raise BadTaskId("the task id is not UTF-8") from None
    return checked_task_id(task_id)


def checked_task_id(task_id: str) -> str:
    if not task_id:
        raise BadTaskId("the task id is empty")
    if len(task_id) > MAX_TASK_ID_CHARS:
        raise BadTaskId(f"the task id is longer than {MAX_TASK_ID_CHARS} characters")
    return task_id


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskStatus:
    task_id: str
    state: str  # waiting | assigned | unroutable | cancelled | the last decision's outcome
    last_decision: Mapping[str, Any] | None
    slot_id: str | None = None  # assigned: its slot
    place: QueuePlace | None = None  # waiting, and placed by the queue view
    waiting_since_ms: int | None = None
    queue_error: str | None = None  # why a waiting task's position is unknown, if it is

    def to_json(self) -> dict[str, Any]:
        place = self.place
        return {
            "task_id": self.task_id,
            "state": self.state,
            "position": place.position if place else None,
            "eta_s": place.eta_s if place else None,
            "waiting_since": iso_utc(self.waiting_since_ms),
            "slot_id": self.slot_id,
            "last_decision": self.last_decision,
            **({"queue_error": self.queue_error} if self.queue_error else {}),
        }


PlaceOf = Callable[[str], QueuePlace | None]  # a waiting task's place (raises QueueUnavailable)


def task_status(
    r: redis.Redis, keys: Keys, task_id: str, decisions: Sequence[Mapping[str, Any]], place_of: PlaceOf
) -> TaskStatus | None:
    """The task's state now; None when neither the ledger nor any decision knows it."""
    state = keys.state(dry_run=False)
    pipe = r.pipeline(transaction=True)
    pipe.hget(state.waiting, task_id)
    pipe.hget(state.assigned, task_id)
    waiting_raw, assigned_raw = pipe.execute()
    last = decisions[-1] if decisions else None
    if waiting_raw is not None:
        return _waiting(task_id, _doc(waiting_raw), last, place_of)
    if assigned_raw is not None:
        slot_id = _doc(assigned_raw).get("slot_id")
        return TaskStatus(
            task_id=task_id, state="assigned", last_decision=last, slot_id=slot_id if isinstance(slot_id, str) else None
        )
    if last is None:
        return None
    outcome = str(last.get("outcome"))
    slot_id = last.get("chosen_slot_id") if outcome == "assigned" else None
    return TaskStatus(task_id=task_id, state=_STATE_AFTER.get(outcome, outcome), last_decision=last, slot_id=slot_id)


def _waiting(task_id: str, doc: Mapping[str, Any], last: Mapping[str, Any] | None, place_of: PlaceOf) -> TaskStatus:
    since = doc.get("since_ms")
    place, error = None, None
    try:
        place = place_of(task_id)
    except QueueUnavailable as exc:
        error = str(exc)
    if place is None and error is None:
        error = "it started waiting after the last reading of the queue; ask again in a second"
    if place is not None:
        since = place.waiting_since_ms
    return TaskStatus(
        task_id=task_id,
        state="waiting",
        last_decision=last,
        place=place,
        waiting_since_ms=since if isinstance(since, int) else None,
        queue_error=error,
    )


def describe(status: TaskStatus) -> str:
    """One line for `router explain`: the task's state now and, waiting, its place in the queue."""
    if status.state == "assigned":
        return f"Now: assigned{f' to slot {status.slot_id}' if status.slot_id else ''}."
    if status.state != "waiting":
        return f"Now: {status.state}."
    line = f"Now: waiting since {utc(status.waiting_since_ms)}"
    place = status.place
    if place is None:
        return f"{line}; queue position unknown ({status.queue_error})."
    return (
        f"{line}; position {place.position} among the waiting tasks that compete for its models,"
        f" ETA {eta(place.eta_s)}{f' ({place.eta_s:.0f} s)' if place.eta_s is not None else ''}."
    )


def _doc(raw: bytes | str) -> dict[str, Any]:
    try:
        doc = decode(raw)
    except ValueError:
        return {}
    return doc if isinstance(doc, dict) else {}


def iso_utc(ms: int | None) -> str | None:
    """Epoch ms as ISO-8601 UTC (`2026-12-08T02:15:00.123Z`); None for none or a time no date holds."""
    if ms is None:
        return None
    try:
        moment = datetime.fromtimestamp(ms / 1000, tz=UTC)
    except (OverflowError, OSError, ValueError):
        return None
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"

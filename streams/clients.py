"""Small clients for the three outside parties: the dispatcher, the slots and ops."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import redis

from streams.codec import as_text, decode, encode, entry_data
from streams.keys import Keys

STATUS_BLOCK_MS = 1000


def _publish(r: redis.Redis, stream: str, doc: Mapping[str, Any]) -> str:
    entry_id = r.xadd(stream, {"data": encode(doc)})
    return as_text(entry_id)


def _follow(r: redis.Redis, stream: str, *, last_id: str, block_ms: int) -> Iterator[tuple[str, dict[str, Any]]]:
    """Yield (entry id, document) from `last_id` on; blocks up to `block_ms` per read, forever."""
    while True:
        reply: Any = r.xread({stream: last_id}, count=500, block=block_ms)
        for _, entries in reply or []:
            for entry_id, fields in entries:
                last_id = as_text(entry_id)
                data = entry_data(fields)
                if data is not None:
                    yield last_id, decode(data)


class Dispatcher:
    """Publishes tasks and follows their status."""

    def __init__(self, r: redis.Redis, keys: Keys | None = None) -> None:
        self.r = r
        self.keys = keys or Keys()

    def publish_task(
        self, task_id: str, *, priority: int, requires: Mapping[str, int] | None = None, **optional: Any
    ) -> str:
        doc = {"type": "task.pending", "task_id": task_id, "priority": priority, "requires": dict(requires or {})}
        doc.update({k: v for k, v in optional.items() if v is not None})
        return _publish(self.r, self.keys.events, doc)

    def cancel(self, task_id: str) -> str:
        return _publish(self.r, self.keys.events, {"type": "task.cancelled", "task_id": task_id})

    def follow_status(
        self, *, last_id: str = "$", block_ms: int = STATUS_BLOCK_MS
    ) -> Iterator[tuple[str, dict[str, Any]]]:
        return _follow(self.r, self.keys.status, last_id=last_id, block_ms=block_ms)


class Slot:
    """One agent slot: announces itself free, heartbeats, and waits for its next assignment."""

    def __init__(self, r: redis.Redis, *, slot_id: str, model: str, account: str = "default", keys: Keys | None = None):
        self.r = r
        self.keys = keys or Keys()
        self.slot_id = slot_id
        self.model = model
        self.account = account
        self.last_id = "0"

    def free(
        self,
        *,
        completed: Mapping[str, Any] | None = None,
        outcome: str | None = None,
        failure: str | None = None,
        detail: str | None = None,
    ) -> str:
        """Announce the slot free; `completed` reports the task it finished, and `outcome`
        (`succeeded` / `failed`), `failure` (`capability` / `transient` / `abandoned`) and `detail`
        how it went (PROTOCOL.md v1.1; they go into `completed`, which must then be given)."""
        doc: dict[str, Any] = {
            "type": "slot.free",
            "slot_id": self.slot_id,
            "model": self.model,
            "account": self.account,
        }
        reported = {k: v for k, v in (("outcome", outcome), ("failure", failure), ("detail", detail)) if v is not None}
        if reported and completed is None:
            raise ValueError("an outcome is reported with the completed task: pass completed={'task_id': ...}")
        if completed is not None:
            doc["completed"] = {**completed, **reported}
        return _publish(self.r, self.keys.events, doc)

    def heartbeat(self) -> str:
        return _publish(self.r, self.keys.events, {"type": "slot.heartbeat", "slot_id": self.slot_id})

    def started(self, task_id: str) -> str:
        return _publish(self.r, self.keys.events, {"type": "task.started", "task_id": task_id, "slot_id": self.slot_id})

    def gone(self) -> str:
        return _publish(self.r, self.keys.events, {"type": "slot.gone", "slot_id": self.slot_id})

    def next_assignment(self, *, block_ms: int = STATUS_BLOCK_MS) -> dict[str, Any] | None:
        """The next assignment after the last one read, or None if none came within `block_ms`."""
        reply: Any = self.r.xread({self.keys.assign(self.slot_id): self.last_id}, count=1, block=block_ms)
        for _, entries in reply or []:
            for entry_id, fields in entries:
                self.last_id = as_text(entry_id)
                data = entry_data(fields)
                if data is not None:
                    doc: dict[str, Any] = decode(data)
                    return doc
        return None


class Ops:
    """Reads decision records and dead letters."""

    def __init__(self, r: redis.Redis, keys: Keys | None = None) -> None:
        self.r = r
        self.keys = keys or Keys()

    def recent_decisions(self, *, count: int = 100) -> list[tuple[str, dict[str, Any]]]:
        """The last `count` decision records, oldest first."""
        return _newest(self.r, self.keys.decisions, count)

    def follow_decisions(
        self, *, last_id: str = "$", block_ms: int = STATUS_BLOCK_MS
    ) -> Iterator[tuple[str, dict[str, Any]]]:
        return _follow(self.r, self.keys.decisions, last_id=last_id, block_ms=block_ms)

    def dead_letters(self, *, count: int = 100) -> list[tuple[str, dict[str, Any]]]:
        return _newest(self.r, self.keys.dead, count)


def _newest(r: redis.Redis, stream: str, count: int) -> list[tuple[str, dict[str, Any]]]:
    """The last `count` entries of a stream, oldest first, decoded."""
    entries: Any = r.xrevrange(stream, count=count)
    out = []
    for entry_id, fields in reversed(entries):
        data = entry_data(fields)
        if data is not None:
            out.append((as_text(entry_id), decode(data)))
    return out

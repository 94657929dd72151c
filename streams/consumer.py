"""Reading `router:events` with a consumer group: new entries, and entries left pending by a crash."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import redis

from streams.codec import entry_data


@dataclass(frozen=True, slots=True)
class Entry:
    entry_id: str
    data: bytes | None  # None: the entry had no `data` field
    deliveries: int = 1


class GroupReader:
    def __init__(self, r: redis.Redis, *, stream: str, group: str, consumer: str, count: int, block_ms: int) -> None:
        self.r = r
        self.stream = stream
        self.group = group
        self.consumer = consumer
        self.count = count
        self.block_ms = block_ms

    def ensure_group(self) -> None:
        """Create the group at the start of the stream, so tasks published before the router first
        ran are still routed."""
        try:
            self.r.xgroup_create(self.stream, self.group, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    def read(self) -> list[Entry]:
        reply: Any = self.r.xreadgroup(
            self.group, self.consumer, {self.stream: ">"}, count=self.count, block=self.block_ms
        )
        if not reply:
            return []
        _, entries = reply[0]
        return [Entry(_text(entry_id), entry_data(fields or {})) for entry_id, fields in entries]

    def reclaim(self) -> Iterator[list[Entry]]:
        """Take over every pending entry of the group (after a crash or a change of leader), in
        batches, with how often each was delivered so poison entries can be retired."""
        cursor = "0-0"
        while True:
            reply: Any = self.r.xautoclaim(
                self.stream, self.group, self.consumer, min_idle_time=0, start_id=cursor, count=self.count
            )
            cursor, claimed = _text(reply[0]), reply[1]
            deleted = [_text(i) for i in reply[2]] if len(reply) > 2 else []
            if deleted:  # trimmed away while pending: nothing left to process
                self.r.xack(self.stream, self.group, *deleted)
            entries = [(_text(i), f) for i, f in claimed if f is not None]
            if entries:
                counts = self._deliveries([i for i, _ in entries])
                yield [Entry(i, entry_data(f), counts.get(i, 1)) for i, f in entries]
            if cursor == "0-0":
                return

    def _deliveries(self, ids: list[str]) -> dict[str, int]:
        pending: Any = self.r.xpending_range(self.stream, self.group, min=ids[0], max=ids[-1], count=len(ids) + 16)
        return {_text(p["message_id"]): int(p["times_delivered"]) for p in pending}


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else value

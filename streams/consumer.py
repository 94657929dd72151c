"""Reading `router:events` with a consumer group: new entries, and entries left pending by a crash."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import redis

from streams.codec import as_bytes, as_text, entry_data
from streams.commit import Arg, AwaitedScript, run_fenced
from streams.scripts import FENCED_READ


@dataclass(slots=True, init=False)
class Entry:
    """One stream entry as read. (Built for every event: not frozen and with its `__init__`
    written out, so that mypyc compiles it; see router/values.py.)"""

    entry_id: str
    data: bytes | None  # None: the entry had no `data` field
    deliveries: int

    def __init__(self, entry_id: str, data: bytes | None, deliveries: int = 1) -> None:
        self.entry_id = entry_id
        self.data = data
        self.deliveries = deliveries


class GroupReader:
    def __init__(self, r: redis.Redis, *, stream: str, group: str, consumer: str, count: int, block_ms: int) -> None:
        self.r = r
        self.stream = stream
        self.group = group
        self.consumer = consumer
        self.count = count
        self.block_ms = block_ms
        self._read_script = r.register_script(FENCED_READ.source)
        # a read sent ahead (send_read) goes over a connection of its own; a cluster client has no pool
        self._ahead = AwaitedScript(self._read_script, r.connection_pool) if isinstance(r, redis.Redis) else None

    def ensure_group(self) -> None:
        """Create the group at the start of the stream, so tasks published before the router first
        ran are still routed."""
        try:
            self.r.xgroup_create(self.stream, self.group, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    def read(self, *, leader_key: str | None = None, fence: str | None = None, block: bool = True) -> list[Entry]:
        """The next batch of new entries; with a fence, only while `leader_key` still holds it
        (raises FencedOut otherwise), waiting up to block_ms when nothing is new (unless not `block`)."""
        if fence is None or leader_key is None:
            reply: Any = self.r.xreadgroup(
                self.group, self.consumer, {self.stream: ">"}, count=self.count, block=self.block_ms if block else None
            )
            return _entries(reply[0][1]) if reply else []
        found, last_id = self._fenced_read(leader_key, fence)
        if found is not None or not block:
            return found or []
        if self.r.xread({self.stream: last_id}, count=1, block=self.block_ms):
            found, _ = self._fenced_read(leader_key, fence)
        return found or []

    @property
    def reading(self) -> bool:
        """A read sent by `send_read` awaits `collect`."""
        return self._ahead is not None and self._ahead.awaiting

    def send_read(self, *, leader_key: str, fence: str) -> bool:
        """Ask for the next batch of new entries without waiting (fenced as `read`), so Redis
        answers while the caller works; `collect` takes the answer. False when this client cannot
        (Redis Cluster): read then."""
        if self._ahead is None:
            return False
        if self._ahead.awaiting:
            raise RuntimeError("a read is already in flight: collect it first")
        self._ahead.send(*self._read_call(leader_key, fence))
        return True

    def collect(self) -> list[Entry]:
        """The entries asked for by `send_read` ([] when nothing was new); raises FencedOut when
        the caller no longer leads."""
        if self._ahead is None:
            raise RuntimeError("no read in flight")
        return _parse_fenced(self._ahead.receive())[0] or []

    def abandon(self) -> None:
        """Drop a read in flight: entries it may have claimed stay pending, for the reclaim that
        follows a loss of state."""
        if self._ahead is not None:
            self._ahead.drop()

    def _fenced_read(self, leader_key: str, fence: str) -> tuple[list[Entry] | None, str]:
        return _parse_fenced(run_fenced(self._read_script, *self._read_call(leader_key, fence)))

    def _read_call(self, leader_key: str, fence: str) -> tuple[list[str], list[Arg]]:
        """Keys and arguments of the fenced read script."""
        return [leader_key, self.stream], [fence, self.group, self.consumer, self.count]

    def reclaim(self) -> Iterator[list[Entry]]:
        """Take over every pending entry of the group (after a crash or a change of leader), in
        batches, with how often each was delivered so poison entries can be retired."""
        cursor = "0-0"
        while True:
            reply: Any = self.r.xautoclaim(
                self.stream, self.group, self.consumer, min_idle_time=0, start_id=cursor, count=self.count
            )
            cursor, claimed = as_text(reply[0]), reply[1]
            deleted = [as_text(i) for i in reply[2]] if len(reply) > 2 else []
            if deleted:  # trimmed away while pending: nothing left to process
                self.r.xack(self.stream, self.group, *deleted)
            entries = [(as_text(i), f) for i, f in claimed if f is not None]
            if entries:
                counts = self._deliveries([i for i, _ in entries])
                yield [Entry(i, entry_data(f), counts.get(i, 1)) for i, f in entries]
            if cursor == "0-0":
                return

    def _deliveries(self, ids: list[str]) -> dict[str, int]:
        pending: Any = self.r.xpending_range(self.stream, self.group, min=ids[0], max=ids[-1], count=len(ids) + 16)
        return {as_text(p["message_id"]): int(p["times_delivered"]) for p in pending}


def _parse_fenced(reply: Any) -> tuple[list[Entry] | None, str]:
    """The fenced read script's reply: the entries claimed, or None and the stream's last id."""
    if int(reply[0]) == 1:
        return [Entry(as_text(i), _pairs(f)) for i, f in reply[1]], ""
    return None, as_text(reply[1])


def _entries(raw: Any) -> list[Entry]:
    return [Entry(as_text(entry_id), entry_data(fields or {})) for entry_id, fields in raw]


def _pairs(flat: Any) -> bytes | None:
    """The `data` field from a script's flat [field, value, ...] reply."""
    if flat and len(flat) == 2 and flat[0] == b"data":  # what every well-formed entry looks like
        return as_bytes(flat[1])
    items = list(flat or [])
    return entry_data(dict(zip(items[::2], items[1::2], strict=False)))

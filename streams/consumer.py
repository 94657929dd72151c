"""Reading streams with a consumer group: new entries, entries left pending by a crash, and
trimming what the group has acknowledged. `GroupReader` reads one stream (the worker's
`router:events`, fenced by the lease); `GroupReaders` reads several together for one consumer (the
recorder's decisions and usage) and acknowledges them with their dead letters in one MULTI."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import redis

from streams.codec import as_bytes, as_text, encode, entry_data
from streams.commit import Arg, AwaitedScript, run_fenced
from streams.scripts import FENCED_READ, TRIM_ACKNOWLEDGED


@dataclass(slots=True, init=False)  # built for every event: see router/values.py
class Entry:
    """One stream entry as read: its id, its `data` field, and how many times the group has
    delivered it (1 for a new entry)."""

    entry_id: str
    data: bytes | None  # None: the entry had no `data` field
    deliveries: int = 1

    def __init__(self, entry_id: str, data: bytes | None, deliveries: int = 1) -> None:
        self.entry_id = entry_id
        self.data = data
        self.deliveries = deliveries


class GroupReader:
    """One consumer of one group on one stream: fenced reads of new entries (only the lease holder
    claims any), reads sent ahead, reclaims of what was left pending, and trims."""

    def __init__(self, r: redis.Redis, *, stream: str, group: str, consumer: str, count: int, block_ms: int) -> None:
        self.r = r
        self.stream = stream
        self.group = group
        self.consumer = consumer
        self.count = count
        self.block_ms = block_ms
        self._read_script = r.register_script(FENCED_READ.source)
        self._trim_script = r.register_script(TRIM_ACKNOWLEDGED.source)
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

    def reclaim(self, *, min_idle_ms: int = 0, count_deliveries: bool = True) -> Iterator[list[Entry]]:
        """Take over the group's pending entries idle for at least `min_idle_ms` (by default every
        one: after a crash or a change of leader), in batches. Each comes with how often it was
        delivered, so poison entries can be retired; without `count_deliveries` (one round trip
        less a batch) each says 1."""
        cursor = "0-0"
        while True:
            reply: Any = self.r.xautoclaim(
                self.stream, self.group, self.consumer, min_idle_time=min_idle_ms, start_id=cursor, count=self.count
            )
            cursor, claimed = as_text(reply[0]), reply[1]
            deleted = [as_text(i) for i in reply[2]] if len(reply) > 2 else []
            if deleted:  # trimmed away while pending: nothing left to process
                self.r.xack(self.stream, self.group, *deleted)
            entries = [(as_text(i), f) for i, f in claimed if f is not None]
            if entries:
                counts = self._deliveries([i for i, _ in entries]) if count_deliveries else {}
                yield [Entry(i, entry_data(f), counts.get(i, 1)) for i, f in entries]
            if cursor == "0-0":
                return

    def _deliveries(self, ids: list[str]) -> dict[str, int]:
        pending: Any = self.r.xpending_range(self.stream, self.group, min=ids[0], max=ids[-1], count=len(ids) + 16)
        return {as_text(p["message_id"]): int(p["times_delivered"]) for p in pending}

    def data_of(self, entry_id: str) -> bytes | None:
        """The `data` of one entry of the stream, read again; None if it is gone or has none."""
        found: Any = self.r.xrange(self.stream, min=entry_id, max=entry_id)
        return entry_data(found[0][1] or {}) if found else None

    def trim_acknowledged(self, *, keep: int, limit: int) -> int:
        """Delete up to `limit` of the oldest entries the group has acknowledged, never the newest
        `keep` (streams.scripts.TRIM_ACKNOWLEDGED); returns how many went."""
        return int(self._trim_script(keys=[self.stream], args=[self.group, keep, limit]))


class GroupReaders:
    """One consumer of one group on several streams, each known by a short name: read together in
    one XREADGROUP, acknowledged together (with any dead letters) in one MULTI, so a batch's
    acknowledgements and dead letters are written both or neither. On Redis Cluster the streams
    must share a hash tag, as every key of one router does."""

    def __init__(self, r: redis.Redis, *, streams: Mapping[str, str], group: str, consumer: str, count: int) -> None:
        self.r = r
        self.group = group
        self.consumer = consumer
        self.count = count
        self.readers = {
            name: GroupReader(r, stream=key, group=group, consumer=consumer, count=count, block_ms=0)
            for name, key in streams.items()
        }

    def ensure_groups(self) -> None:
        """Create the group on every stream (at its start) where it does not exist yet."""
        for reader in self.readers.values():
            reader.ensure_group()

    def read(self, *, block_ms: int) -> dict[str, list[Entry]] | None:
        """New entries of every stream, by name, waiting up to `block_ms` for any (0: not at all);
        None when a stream's group is gone (the stream was deleted): ensure the groups again."""
        keys = {reader.stream: name for name, reader in self.readers.items()}
        try:
            # BLOCK 0 would mean "forever" to Redis; a read that must not wait omits BLOCK instead
            reply: Any = self.r.xreadgroup(
                self.group, self.consumer, dict.fromkeys(keys, ">"), count=self.count, block=block_ms or None
            )
        except redis.ResponseError as exc:
            if "NOGROUP" not in str(exc):
                raise
            return None
        by_key = {as_text(key): entries for key, entries in reply or []}
        return {name: _entries(by_key.get(key, [])) for key, name in keys.items()}

    def reclaim(self, *, min_idle_ms: int) -> Iterator[tuple[str, list[Entry]]]:
        """Take over the pending entries idle for at least `min_idle_ms`, stream by stream, in
        batches (GroupReader.reclaim, without delivery counts)."""
        for name, reader in self.readers.items():
            for entries in reader.reclaim(min_idle_ms=min_idle_ms, count_deliveries=False):
                yield name, entries

    def acknowledge(
        self, acks: Mapping[str, Sequence[str]], *, dead_letters: Sequence[Mapping[str, Any]], dead_stream: str
    ) -> None:
        """In one MULTI: add `dead_letters` to `dead_stream`, and acknowledge the entries of
        `acks` (stream name -> entry ids)."""
        pipe = self.r.pipeline(transaction=True)
        for doc in dead_letters:
            pipe.xadd(dead_stream, {"data": encode(doc)})
        for name, ids in acks.items():
            if ids:
                pipe.xack(self.readers[name].stream, self.group, *ids)
        pipe.execute()

    def trim(self, *, keep: int, limit: int) -> None:
        """Trim each stream to what the group has acknowledged, keeping its newest `keep` entries
        and deleting at most `limit` a stream (GroupReader.trim_acknowledged)."""
        for reader in self.readers.values():
            reader.trim_acknowledged(keep=keep, limit=limit)


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

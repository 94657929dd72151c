"""The atomic step: one Lua call writes a batch's outputs and ledger changes and acknowledges its
inputs, after checking the caller still holds the leader's fencing token (ARCHITECTURE.md 1 and 5).

A crash before the call leaves the inputs pending; after it, everything is there. A deposed
leader's call is refused inside Redis, so it cannot write after its successor.

Writes are grouped by key before they are sent: every field a batch sets in one hash goes in one
variadic HSET, every entry it acknowledges in one XACK, every value it pushes to one list in one
RPUSH. The script is atomic, so grouping changes nothing anyone can observe but the cost: a batch
of 256 events is a few dozen Redis calls instead of a thousand.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import redis
from redis.commands.core import Script

from router.errors import RouterError
from streams.connection import AwaitedReply
from streams.scripts import ATOMIC_STEP


class FencedOut(RouterError):
    """This process is no longer the leader: its writes were refused."""


Arg = bytes | str | int


@dataclass(slots=True)
class AtomicStep:
    """Operations collected for one batch, grouped by key, sent as one script call. Within a key
    the order of calls is kept (stream entries, list values); a hash field set or deleted twice
    keeps its last value; acknowledgements go last, so a refused write leaves the inputs pending."""

    leader_key: str
    _streams: dict[tuple[str, int], list[Arg]] = field(default_factory=dict)
    _hashes: dict[str, dict[str, Arg | None]] = field(default_factory=dict)
    _lists: dict[tuple[str, int], list[Arg]] = field(default_factory=dict)
    _acks: dict[tuple[str, str], list[str]] = field(default_factory=dict)

    def xadd(self, stream: str, data: bytes, *, maxlen: int = 0) -> None:
        self._streams.setdefault((stream, maxlen), []).append(data)

    def hset(self, key: str, field_name: str, value: bytes | str) -> None:
        self._hashes.setdefault(key, {})[field_name] = value

    def hdel(self, key: str, field_name: str) -> None:
        self._hashes.setdefault(key, {})[field_name] = None

    def xack(self, stream: str, group: str, *entry_ids: str) -> None:
        self._acks.setdefault((stream, group), []).extend(entry_ids)

    def rpush_capped(self, key: str, value: bytes | str, *, keep: int) -> None:
        self._lists.setdefault((key, keep), []).append(value)

    def layout(self) -> tuple[list[str], list[Arg]]:
        """The script's KEYS (the leader key first) and operations, in the order: stream entries,
        hashes, lists, acknowledgements."""
        keys = [self.leader_key]
        index = {self.leader_key: 1}

        def key_no(key: str) -> int:
            found = index.get(key)
            if found is None:
                keys.append(key)
                found = index[key] = len(keys)
            return found

        out: list[Arg] = []
        for (stream, maxlen), entries in self._streams.items():
            out += ["X", key_no(stream), maxlen, len(entries), *entries]
        for key, fields in self._hashes.items():
            sets = [(f, v) for f, v in fields.items() if v is not None]
            deletes = [f for f, v in fields.items() if v is None]
            if sets:
                out += ["H", key_no(key), len(sets)]
                for pair in sets:
                    out += pair
            if deletes:
                out += ["D", key_no(key), len(deletes), *deletes]
        for (key, keep), values in self._lists.items():
            out += ["R", key_no(key), keep, len(values), *values]
        for (stream, group), ids in self._acks.items():
            out += ["A", key_no(stream), group, len(ids), *ids]
        return keys, out

    def __bool__(self) -> bool:
        return bool(self._streams or self._hashes or self._lists or self._acks)


class Committer:
    """Runs atomic steps. `send` hands a step to Redis and `settle` collects its outcome, so the caller
    can route its next batch while Redis runs this one; `commit` does both.

    On a plain Redis client the steps go over a connection of their own while they run
    (`AwaitedScript`), so nothing else waits behind them. On other clients (Redis Cluster) `send`
    runs the step to the end and `settle` has nothing left to do."""

    def __init__(self, r: redis.Redis) -> None:
        self._script = r.register_script(ATOMIC_STEP.source)
        # a cluster client is not a redis.Redis and has no single pool
        self._pending = AwaitedScript(self._script, r.connection_pool) if isinstance(r, redis.Redis) else None

    @property
    def in_flight(self) -> bool:
        return self._pending is not None and self._pending.awaiting

    def commit(self, step: AtomicStep, *, fence: str | None) -> None:
        """Run the step; raises FencedOut if `fence` no longer matches the leader key."""
        self.send(step, fence=fence)
        self.settle()

    def send(self, step: AtomicStep, *, fence: str | None) -> None:
        """Hand the step to Redis without waiting for it (at most one step in flight)."""
        if not step:
            return
        if self.in_flight:
            raise RuntimeError("a step is already in flight: settle it first")
        keys, args = step.layout()
        if self._pending is None:
            self.run(keys, args, fence=fence)
        else:
            self._pending.send(keys, [fence or "", *args])

    def settle(self) -> None:
        """Wait for the step in flight; raises FencedOut if it was refused, or what Redis answered.
        After a connection error it is unknown whether the step ran: the caller's snapshot tells."""
        if self.in_flight:
            assert self._pending is not None
            self._pending.receive()

    def run(self, keys: list[str], args: list[Arg], *, fence: str | None) -> None:
        """The script on operations already laid out (see streams.scripts.ATOMIC_STEP), waiting for its reply."""
        run_fenced(self._script, keys, [fence or "", *args])


class AwaitedScript:
    """A fenced script sent without waiting for its reply (over a pooled connection of its own,
    `AwaitedReply`), the reply taken later. Raises FencedOut when the script refused the caller; if
    Redis no longer knew the script (first use, a restart, SCRIPT FLUSH), nothing ran, and
    `receive` runs it then."""

    def __init__(self, script: Script, pool: redis.ConnectionPool) -> None:
        self._script = script
        self._reply = AwaitedReply(pool)
        self._sent: tuple[list[str], list[Arg]] | None = None

    @property
    def awaiting(self) -> bool:
        return self._sent is not None

    def send(self, keys: list[str], args: list[Arg]) -> None:
        if self._sent is not None:
            raise RuntimeError("a reply is already awaited: receive it first")
        self._reply.send("EVALSHA", self._script.sha, len(keys), *keys, *args)
        self._sent = (keys, args)

    def receive(self) -> Any:
        sent, self._sent = self._sent, None
        if sent is None:
            raise RuntimeError("no reply awaited")
        try:
            return self._reply.receive()
        except redis.exceptions.NoScriptError:
            return run_fenced(self._script, *sent)
        except redis.ResponseError as exc:
            raise_if_fenced(exc)
            raise

    def drop(self) -> None:
        """Give up on the reply (the script may still run)."""
        self._sent = None
        self._reply.drop()


def run_fenced(script: Script, keys: list[str], args: list[Arg]) -> Any:
    """Run a fenced script and wait for its reply; raises FencedOut when it refused the caller."""
    try:
        return script(keys=keys, args=args)
    except redis.ResponseError as exc:
        raise_if_fenced(exc)
        raise


def raise_if_fenced(exc: redis.ResponseError) -> None:
    """Raise FencedOut if Redis refused a fenced script because the caller no longer leads."""
    if str(exc).startswith("FENCED"):
        raise FencedOut(str(exc)) from None

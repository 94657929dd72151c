"""The atomic step: one Lua call writes a batch's outputs and ledger changes and acknowledges its
inputs, after checking the caller still holds the leader's fencing token (ARCHITECTURE.md 1 and 5).

A crash before the call leaves the inputs pending; after it, everything is there. A deposed
leader's call is refused inside Redis, so it cannot write after its successor.

Writes are grouped by key before they are sent: every field a batch sets in one hash goes in one
variadic HSET, every entry it acknowledges in one XACK, every value it pushes to one list in one
RPUSH. The script is atomic, so grouping changes nothing anyone can observe but the cost: a batch
of 256 events is a few dozen Redis calls instead of a thousand.

With replication asked for (`Replication`, from `ROUTER_MIN_REPLICAS`), the step writes every
stream entry to an outbox list instead; the same connection then sends `WAIT`, and only once the
replicas have the step does the publish script (`streams.scripts.PUBLISH_OUTBOX`) move the outbox
into the streams. A failover can then lose a publication, never a decision a consumer acted on: the
promoted replica holds the step and its outbox, and the new leader publishes what is left in it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import redis
from redis.commands.core import Script

from router.errors import RouterError
from streams.connection import AwaitedReply, NotReplicated
from streams.scripts import ATOMIC_STEP, PUBLISH_OUTBOX


class FencedOut(RouterError):
    """This process is no longer the leader: its writes were refused."""


Arg = bytes | str | int


@dataclass(slots=True)
class AtomicStep:
    """Operations collected for one batch, grouped by key, sent as one script call. Within a key
    the order of calls is kept (stream entries, list values); a hash field set or deleted twice
    keeps its last value; acknowledgements go last, so a refused write leaves the inputs pending."""

    leader_key: str
    outbox: str | None = None  # stream entries go to this list, to be published once replicated
    _streams: dict[tuple[str, int], list[Arg]] = field(default_factory=dict)
    _hashes: dict[str, dict[str, Arg | None]] = field(default_factory=dict)
    _lists: dict[tuple[str, int], list[Arg]] = field(default_factory=dict)
    _acks: dict[tuple[str, str], list[str]] = field(default_factory=dict)

    def xadd(self, stream: str, data: bytes, *, maxlen: int = 0) -> None:
        if self.outbox is None:
            self._streams.setdefault((stream, maxlen), []).append(data)
        else:
            self._lists.setdefault((self.outbox, 0), []).extend((stream, maxlen, data))

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


@dataclass(frozen=True, slots=True, kw_only=True)
class Replication:
    """Publish a step's stream entries only once `min_replicas` replicas have it, waiting at most
    `timeout_ms` for them; the outbox holds the entries meanwhile, the probe key takes the write
    whose replication `WAIT` confirms when no step was just written on the same connection."""

    min_replicas: int
    timeout_ms: int
    leader_key: str
    outbox_key: str
    probe_key: str


class Committer:
    """Runs atomic steps. `send` hands a step to Redis and `settle` collects its outcome, so the caller
    can route its next batch while Redis runs this one; `commit` does both.

    On a plain Redis client the steps go over a connection of their own while they run
    (`AwaitedScript`), so nothing else waits behind them. On other clients (Redis Cluster) `send`
    runs the step to the end and `settle` has nothing left to do.

    With `replication`, a settled step's outbox is published by the next `send` (ahead of that
    step, on the same connection: no round trip of its own) or by `publish`; `settle` raises
    NotReplicated, publishing nothing, when `WAIT` saw fewer replicas than asked for."""

    def __init__(self, r: redis.Redis, *, replication: Replication | None = None) -> None:
        self._r = r
        self._script = r.register_script(ATOMIC_STEP.source)
        self._publisher = r.register_script(PUBLISH_OUTBOX.source)
        self.replication = replication
        # a cluster client is not a redis.Redis and has no single pool
        self._pending = AwaitedScript(self._script, r.connection_pool) if isinstance(r, redis.Redis) else None
        self._publish_due = False  # the outbox holds only what the replicas have: publish it
        self._sent_publish = False

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
        elif self.replication is None:
            self._pending.send(keys, [fence or "", *args])
        else:
            self._sent_publish = self._publish_due
            ahead = [self._publish_command(fence)] if self._publish_due else []
            self._pending.send(keys, [fence or "", *args], ahead=ahead, behind=[self._wait_command()])

    def settle(self) -> None:
        """Wait for the step in flight; raises FencedOut if it was refused, or what Redis answered.
        After a connection error it is unknown whether the step ran: the caller's snapshot tells."""
        if not self.in_flight:
            return
        assert self._pending is not None
        if self.replication is None:
            self._pending.receive()
            return
        sent_publish, self._sent_publish = self._sent_publish, False
        ahead, reply, behind = self._pending.receive_around()
        if sent_publish:
            self._published(ahead[0])
        self._pending.resolve(reply)
        replicas = int(behind[0]) if behind is not None else self._probe_replicas()
        self._check_replicas(replicas)
        self._publish_due = True

    def _published(self, reply: Any) -> None:
        """The outcome of a publish sent ahead of a step: done, or raised; unknown to Redis (first
        use, a restart, SCRIPT FLUSH), it is loaded and stays due, which is safe: the outbox then
        also holds the entries of the step sent behind it, and that step is confirmed (or
        NotReplicated raised) before anything publishes again."""
        if isinstance(reply, redis.exceptions.NoScriptError):
            self._r.script_load(PUBLISH_OUTBOX.source)
            return
        self._publish_due = False
        if isinstance(reply, redis.ResponseError):
            raise_if_fenced(reply)
            raise reply

    def publish(self, *, fence: str | None) -> None:
        """Publish the outbox if the last step settled is replicated and its outbox still unpublished."""
        if self._publish_due:
            run_fenced(self._publisher, self._outbox_keys(), [fence or ""])
            self._publish_due = False

    def publish_leftover(self, *, fence: str | None) -> None:
        """A new leader's first write: once the replicas hold everything on this node, publish
        what an earlier leader left in the outbox (NotReplicated if they do not yet)."""
        if self.replication is None:
            return
        self._check_replicas(self._probe_replicas())
        self._publish_due = True
        self.publish(fence=fence)

    def forget(self) -> None:
        """State is lost: whatever the outbox holds is published by `publish_leftover` later."""
        self._publish_due = False
        self._sent_publish = False

    def run(self, keys: list[str], args: list[Arg], *, fence: str | None) -> None:
        """The script on operations already laid out (see streams.scripts.ATOMIC_STEP), waiting for its reply."""
        run_fenced(self._script, keys, [fence or "", *args])

    def _outbox_keys(self) -> list[str]:
        assert self.replication is not None
        return [self.replication.leader_key, self.replication.outbox_key]

    def _publish_command(self, fence: str | None) -> tuple[Arg, ...]:
        return ("EVALSHA", self._publisher.sha, 2, *self._outbox_keys(), fence or "")

    def _wait_command(self) -> tuple[Arg, ...]:
        assert self.replication is not None
        return ("WAIT", self.replication.min_replicas, self.replication.timeout_ms)

    def _probe_replicas(self) -> int:
        """How many replicas acknowledge a write made now (WAIT counts what the same connection
        wrote, so the probe is written on it first)."""
        assert self.replication is not None
        pipe = self._r.pipeline(transaction=False)
        pipe.hincrby(self.replication.probe_key, "probe", 1)
        pipe.wait(self.replication.min_replicas, self.replication.timeout_ms)
        return int(pipe.execute()[-1])

    def _check_replicas(self, replicas: int) -> None:
        assert self.replication is not None
        wanted = self.replication.min_replicas
        if replicas < wanted:
            raise NotReplicated(
                f"WAIT saw {replicas} of {wanted} replicas within {self.replication.timeout_ms} ms: nothing"
                " published until they catch up"
            )


class AwaitedScript:
    """A fenced script sent without waiting for its reply (over a pooled connection of its own,
    `AwaitedReply`), the reply taken later, optionally with commands sent just ahead of it and
    behind it on the same connection. Raises FencedOut when the script refused the caller; if
    Redis no longer knew the script (first use, a restart, SCRIPT FLUSH), nothing ran, and
    `receive` runs it then (on another connection: after what was sent behind it)."""

    def __init__(self, script: Script, pool: redis.ConnectionPool) -> None:
        self._script = script
        self._reply = AwaitedReply(pool)
        self._sent: tuple[list[str], list[Arg]] | None = None
        self._ahead = 0

    @property
    def awaiting(self) -> bool:
        return self._sent is not None

    def send(
        self,
        keys: list[str],
        args: list[Arg],
        *,
        ahead: Sequence[tuple[Arg, ...]] = (),
        behind: Sequence[tuple[Arg, ...]] = (),
    ) -> None:
        if self._sent is not None:
            raise RuntimeError("a reply is already awaited: receive it first")
        self._reply.send_all([*ahead, ("EVALSHA", self._script.sha, len(keys), *keys, *args), *behind])
        self._sent = (keys, args)
        self._ahead = len(ahead)

    def receive(self) -> Any:
        return self.resolve(self.receive_around()[1])

    def receive_around(self) -> tuple[list[Any], Any, list[Any] | None]:
        """The replies of the commands sent ahead (error replies as exceptions, not raised), the
        script's, and those sent behind it: None when the script had to run again after them."""
        sent, self._sent = self._sent, None
        if sent is None:
            raise RuntimeError("no reply awaited")
        replies = self._reply.receive_all()
        ahead, mine, behind = replies[: self._ahead], replies[self._ahead], replies[self._ahead + 1 :]
        if isinstance(mine, redis.exceptions.NoScriptError):
            return ahead, _RanAgain(sent), None
        return ahead, mine, behind

    def resolve(self, reply: Any) -> Any:
        """A reply from `receive_around` as `receive` gives it: raised if an error, run now if the
        script was unknown."""
        if isinstance(reply, _RanAgain):
            return run_fenced(self._script, *reply.sent)
        if isinstance(reply, redis.ResponseError):
            raise_if_fenced(reply)
            raise reply
        return reply

    def drop(self) -> None:
        """Give up on the reply (the script may still run)."""
        self._sent = None
        self._reply.drop()


@dataclass(frozen=True, slots=True)
class _RanAgain:
    """The script was unknown to Redis and must run again (keys, args)."""

    sent: tuple[list[str], list[Arg]]


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

"""Small clients for the three outside parties: the dispatcher, the slots and ops. A public API,
documented with examples in docs/clients.md (the wire underneath: docs/protocol.md)."""

from __future__ import annotations

import contextlib
import time
from collections import deque
from collections.abc import Iterator, Mapping
from typing import Any

import redis

from streams.codec import as_text, decode, encode, entry_data
from streams.connection import NotReplicated
from streams.keys import Keys

STATUS_BLOCK_MS = 1000
# Each slot reads its assignment stream with a consumer group of this name (the slot id is the
# consumer), so that a restarted slot resumes where it left off (docs/clients.md).
SLOT_GROUP = "slot"
# A slot works on one assignment at a time; more held than this means a misbehaving client.
MAX_HELD = 1000
TAKEN_KEPT = 1000  # decision ids a slot remembers having taken (a failover republishes only recent ones)


# A durable publish keeps retrying this long across a failover before it gives up.
DURABLE_RETRY_S = 30.0
_RETRY_PAUSE_S = 0.1


def _publish(r: redis.Redis, stream: str, doc: Mapping[str, Any]) -> str:
    entry_id = r.xadd(stream, {"data": encode(doc)})
    return as_text(entry_id)


def publish_durably(
    r: redis.Redis, stream: str, doc: Mapping[str, Any], *, replicas: int, timeout_ms: int = 1000
) -> str:
    """XADD, then WAIT until `replicas` replicas have it: an entry acknowledged so survives a
    failover to any of them. Retried (a new XADD) when the connection fails or WAIT times out,
    for up to DURABLE_RETRY_S: a retry may publish the event twice, so use it for idempotent
    events (`task.pending`, `task.cancelled`). NotReplicated once the time is up."""
    deadline = time.monotonic() + DURABLE_RETRY_S
    while True:
        try:
            pipe = r.pipeline(transaction=False)
            pipe.xadd(stream, {"data": encode(doc)})
            pipe.wait(replicas, timeout_ms)
            entry_id, acked = pipe.execute()
            if int(acked) >= replicas:
                return as_text(entry_id)
            problem = f"WAIT saw {acked} of {replicas} replicas"
        except (redis.ConnectionError, redis.TimeoutError, redis.exceptions.ReadOnlyError) as exc:
            problem = str(exc)  # a failover under way: the next try reaches the new primary
        if time.monotonic() > deadline:
            raise NotReplicated(f"not durably published within {DURABLE_RETRY_S:g} s: {problem}")
        time.sleep(_RETRY_PAUSE_S)


def _follow(r: redis.Redis, stream: str, *, last_id: str, block_ms: int) -> Iterator[tuple[str, dict[str, Any]]]:
    """(entry id, document) after `last_id`, forever, blocking up to `block_ms` per read. `$` is
    resolved now, to the newest entry's id: passed as it is, each read would start at its own "now"
    and miss what came between reads (and before the first one)."""
    if last_id == "$":
        last_id = _newest_id(r, stream)
    return _entries_after(r, stream, last_id=last_id, block_ms=block_ms)


def _newest_id(r: redis.Redis, stream: str) -> str:
    newest: Any = r.xrevrange(stream, count=1)
    return as_text(newest[0][0]) if newest else "0-0"


def _entries_after(r: redis.Redis, stream: str, *, last_id: str, block_ms: int) -> Iterator[tuple[str, dict[str, Any]]]:
    while True:
        reply: Any = r.xread({stream: last_id}, count=500, block=block_ms)
        for _, entries in reply or []:
            for entry_id, fields in entries:
                last_id = as_text(entry_id)
                data = entry_data(fields)
                if data is not None:
                    yield last_id, decode(data)


class Dispatcher:
    """Publishes tasks and follows their status. With `replicas` >= 1 every publish is durable
    (`publish_durably`): it returns only once that many replicas have the event."""

    def __init__(self, r: redis.Redis, keys: Keys | None = None, *, replicas: int = 0) -> None:
        self.r = r
        self.keys = keys or Keys()
        self.replicas = replicas

    def _publish(self, doc: Mapping[str, Any]) -> str:
        if self.replicas:
            return publish_durably(self.r, self.keys.events, doc, replicas=self.replicas)
        return _publish(self.r, self.keys.events, doc)

    def publish_task(
        self, task_id: str, *, priority: int, requires: Mapping[str, int] | None = None, **optional: Any
    ) -> str:
        doc = {"type": "task.pending", "task_id": task_id, "priority": priority, "requires": dict(requires or {})}
        doc.update({k: v for k, v in optional.items() if v is not None})
        return self._publish(doc)

    def cancel(self, task_id: str) -> str:
        return self._publish({"type": "task.cancelled", "task_id": task_id})

    def follow_status(
        self, *, last_id: str = "$", block_ms: int = STATUS_BLOCK_MS
    ) -> Iterator[tuple[str, dict[str, Any]]]:
        """(entry id, status message) after `last_id`; `$`, the default, is the moment of this call,
        so following before publishing misses no status of the tasks published."""
        return _follow(self.r, self.keys.status, last_id=last_id, block_ms=block_ms)


class Slot:
    """One agent slot: announces itself free, heartbeats, takes its assignments and reports them done.

    It reads `router:assign:{slot_id}` with a consumer group of its own (`SLOT_GROUP`, the slot id as
    consumer). An assignment stays pending in that group while the slot works on it, and is
    acknowledged only by the `slot.free` (or `slot.gone`) that ends the work, in the same MULTI/EXEC:
    a slot killed mid-task gets that assignment back from `resume()` when it restarts; one that
    reported it done never sees it again."""

    def __init__(self, r: redis.Redis, *, slot_id: str, model: str, account: str = "default", keys: Keys | None = None):
        self.r = r
        self.keys = keys or Keys()
        self.slot_id = slot_id
        self.model = model
        self.account = account
        self.stream = self.keys.assign(slot_id)
        self.held: list[str] = []  # ids of the assignments taken and not yet acknowledged
        self._joined = False
        # decisions already taken: after a failover the new primary may publish an assignment
        # again that this slot read from the old one (its outbox was replicated, the publication not)
        self._taken: deque[str] = deque(maxlen=TAKEN_KEPT)

    def resume(self) -> dict[str, Any] | None:
        """The first call of a slot process, fresh or restarted: the assignment it took and had not
        finished when it stopped, or one the router made while it was down, to be done first; None
        when there is none, after announcing the slot free. (Announcing it free over such an
        assignment would tell the router the slot dropped that task.)"""
        assignment = self._take("0", block_ms=None) or self._take(">", block_ms=None)
        if assignment is None:
            self.free()
        return assignment

    def next_assignment(self, *, block_ms: int = STATUS_BLOCK_MS) -> dict[str, Any] | None:
        """The next new assignment, or None if none came within `block_ms`. It stays pending until
        `complete()`, `free()` or `gone()`."""
        return self._take(">", block_ms=block_ms)

    def started(self, task_id: str) -> str:
        """`task.started`: the slot began the task, so the router keeps it with the slot even if
        the slot goes quiet for a while."""
        return _publish(self.r, self.keys.events, {"type": "task.started", "task_id": task_id, "slot_id": self.slot_id})

    def complete(
        self,
        task_id: str,
        *,
        input_tokens: int | None = None,
        output_tokens: int | None = None,
        cost_usd: float | None = None,
        **report: Any,
    ) -> str:
        """The task is done and the slot free again: `slot.free` with `completed`. Further keyword
        arguments go into `completed` as they are; None values are left out."""
        completed: dict[str, Any] = {"task_id": task_id, "input_tokens": input_tokens, "output_tokens": output_tokens}
        completed.update(cost_usd=cost_usd, **report)
        return self.free(completed={k: v for k, v in completed.items() if v is not None})

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
        how it went (PROTOCOL.md v1.1; they go into `completed`, which must then be given). It
        acknowledges every assignment the slot holds, in the same transaction: an idle slot holds none
        (the router counts them finished or dropped)."""
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
        return self._publish_releasing(doc)

    def heartbeat(self) -> str:
        return _publish(self.r, self.keys.events, {"type": "slot.heartbeat", "slot_id": self.slot_id})

    def gone(self) -> str:
        """`slot.gone`: the slot leaves; what it holds is acknowledged (the router takes back a task
        the slot had not started)."""
        return self._publish_releasing({"type": "slot.gone", "slot_id": self.slot_id})

    def _publish_releasing(self, doc: Mapping[str, Any]) -> str:
        # Joined before the announcement, so that no assignment can precede the group. A stream the
        # slot cannot join (not a stream, or an ACL that lets this client only publish) does not
        # hold the announcement back: reading assignments will say what is wrong.
        with contextlib.suppress(redis.ResponseError):
            self._join()
        pipe = self.r.pipeline(transaction=True)
        pipe.xadd(self.keys.events, {"data": encode(doc)})
        if self.held:
            pipe.xack(self.stream, SLOT_GROUP, *self.held)
        entry_id = pipe.execute()[0]
        self.held = []
        return as_text(entry_id)

    def _take(self, last_id: str, *, block_ms: int | None) -> dict[str, Any] | None:
        """The first readable assignment from `last_id` ("0": this slot's pending ones, ">": new
        ones), now held. One that cannot be read (trimmed away while pending, or not a JSON object)
        is acknowledged and passed over: there is nothing in it to do."""
        self._join()
        while True:
            entries = self._read(last_id, block_ms)
            if not entries:
                return None
            entry_id, fields = entries[0]
            held_id = as_text(entry_id)
            if held_id not in self.held:
                self.held.append(held_id)
            assignment = _assignment(fields)
            if assignment is not None and not self._seen(assignment):
                return assignment
            self.r.xack(self.stream, SLOT_GROUP, held_id)
            self.held.remove(held_id)

    def _seen(self, assignment: Mapping[str, Any]) -> bool:
        """True for an assignment this slot took before (published again by a failover); else
        it is remembered as taken now."""
        decision_id = assignment.get("decision_id")
        if not isinstance(decision_id, str):
            return False
        if decision_id in self._taken:
            return True
        self._taken.append(decision_id)
        return False

    def _read(self, last_id: str, block_ms: int | None) -> list[Any]:
        try:
            reply: Any = self._read_group(last_id, block_ms)
        except redis.ResponseError as exc:
            if "NOGROUP" not in str(exc):
                raise
            # The stream was deleted, group and all, since this slot last read it: every entry of
            # the stream now was written since, so the group starts from its beginning.
            self._joined = False
            self._join(start="0")
            reply = self._read_group(last_id, block_ms)
        return [entry for _, entries in reply or [] for entry in entries]

    def _read_group(self, last_id: str, block_ms: int | None) -> Any:
        return self.r.xreadgroup(SLOT_GROUP, self.slot_id, {self.stream: last_id}, count=1, block=block_ms)

    def _join(self, *, start: str = "$") -> None:
        """Creates the slot's group if it has none, by default at the stream's end: a slot joins
        before it first announces itself free, so what is already there was for an earlier reader
        (a plain XREAD one). Then learns what this slot holds from an earlier run."""
        if self._joined:
            return
        try:
            self.r.xgroup_create(self.stream, SLOT_GROUP, id=start, mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        pending: Any = self.r.xpending_range(
            self.stream, SLOT_GROUP, min="-", max="+", count=MAX_HELD, consumername=self.slot_id
        )
        self.held = [as_text(p["message_id"]) for p in pending]
        self._joined = True


def _assignment(fields: Mapping[Any, Any] | None) -> dict[str, Any] | None:
    data = entry_data(dict(fields or {}))
    try:
        doc = decode(data) if data is not None else None
    except ValueError:
        return None
    return doc if isinstance(doc, dict) else None


class Ops:
    """Reads the decision records: the latest ones, or as they come."""

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


def _newest(r: redis.Redis, stream: str, count: int) -> list[tuple[str, dict[str, Any]]]:
    """The last `count` entries of a stream, oldest first, decoded."""
    entries: Any = r.xrevrange(stream, count=count)
    out = []
    for entry_id, fields in reversed(entries):
        data = entry_data(fields)
        if data is not None:
            out.append((as_text(entry_id), decode(data)))
    return out

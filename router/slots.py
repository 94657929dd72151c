"""The slot ledger: every slot the router knows, grouped in pools of one (model, account)."""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Final

from router.sortedseq import SortedSeq
from router.values import Alternative, Verdict


class SlotState(StrEnum):
    FREE = "free"
    BUSY = "busy"
    GONE = "gone"


@dataclass(slots=True, kw_only=True, init=False)  # built at every slot.free: see router/values.py
class SlotRecord:
    """One slot as the ledger knows it: its pool, its state since when, when it was last heard
    from, and the task it holds while busy."""

    slot_id: str
    model: str
    account: str
    state: SlotState
    since_ms: int
    last_heard_ms: int
    task_id: str | None = None
    decision_id: str | None = None
    started: bool = False
    # the assigned task as it waited, kept until the slot reports it started, so that an assignment
    # that lapses (the slot left or went silent first) can go back to waiting in its old place
    held: dict[str, Any] | None = None

    def __init__(
        self,
        *,
        slot_id: str,
        model: str,
        account: str,
        state: SlotState,
        since_ms: int,
        last_heard_ms: int,
        task_id: str | None = None,
        decision_id: str | None = None,
        started: bool = False,
        held: dict[str, Any] | None = None,
    ) -> None:
        self.slot_id = slot_id
        self.model = model
        self.account = account
        self.state = state
        self.since_ms = since_ms
        self.last_heard_ms = last_heard_ms
        self.task_id = task_id
        self.decision_id = decision_id
        self.started = started
        self.held = held

    def to_json(self) -> dict[str, Any]:
        return {
            "slot_id": self.slot_id,
            "model": self.model,
            "account": self.account,
            "state": _STATE_TEXT[self.state],  # .value runs as Python; see values.plain
            "since_ms": self.since_ms,
            "last_heard_ms": self.last_heard_ms,
            "task_id": self.task_id,
            "decision_id": self.decision_id,
            "started": self.started,
            "held": self.held,
        }

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> SlotRecord:
        return cls(
            slot_id=doc["slot_id"],
            model=doc["model"],
            account=doc["account"],
            state=SlotState(doc["state"]),
            since_ms=int(doc["since_ms"]),
            last_heard_ms=int(doc["last_heard_ms"]),
            task_id=doc.get("task_id"),
            decision_id=doc.get("decision_id"),
            started=bool(doc.get("started", False)),
            held=doc.get("held"),
        )


_STATE_TEXT: Final[dict[SlotState, str]] = {state: state.value for state in SlotState}
PoolKey = tuple[str, str]  # (model, account)
UTIL_SEP: Final = "\x1f"  # between account and model in the snapshot's utilisation keys


def utilisation_key(account: str, model: str) -> str:
    return f"{account}{UTIL_SEP}{model}"


def split_utilisation_key(key: str) -> tuple[str, str]:
    """(account, model) of a snapshot utilisation key: model ids never hold the separator, an
    account name may."""
    account, _, model = key.rpartition(UTIL_SEP)
    return account, model


@dataclass(slots=True)
class Pool:
    """Slot ids of one (model, account) by state, sorted so the smallest id wins ties cheaply; free
    slots are also kept by when they were last heard, so stale ones are counted by bisection."""

    free: SortedSeq[str] = field(default_factory=SortedSeq)
    busy: SortedSeq[str] = field(default_factory=SortedSeq)
    gone: SortedSeq[str] = field(default_factory=SortedSeq)
    free_by_heard: SortedSeq[tuple[int, str]] = field(default_factory=SortedSeq)
    # Bumped whenever a slot enters or leaves one of the buckets: explanations built from the
    # buckets (router/policy.py) are kept in `explained` with the version they were built at, as
    # every decision lists every pool and most pools do not change between two decisions.
    version: int = 0
    explained: dict[tuple[Verdict, str | None, int], tuple[int, list[Alternative]]] = field(default_factory=dict)

    def bucket(self, state: SlotState) -> SortedSeq[str]:
        if state is SlotState.FREE:
            return self.free
        return self.busy if state is SlotState.BUSY else self.gone

    def __len__(self) -> int:
        return len(self.free) + len(self.busy) + len(self.gone)


NEVER_MS: Final = 2**62


class SlotLedger:
    """Every mutation goes: take the record out of the indexes, change it, put it back; so the
    pools, the staleness order and the lapse order always agree with the records. (The first n of
    a sorted sequence are read with SortedSeq.first: no positions to work out.)"""

    def __init__(self, *, stale_after_ms: int, assignment_timeout_ms: int = NEVER_MS) -> None:
        self.stale_after_ms = stale_after_ms
        self.assignment_timeout_ms = assignment_timeout_ms
        self.slots: dict[str, SlotRecord] = {}
        self.pools: dict[PoolKey, Pool] = {}
        # quota utilisation per (account, model), 0..1; unknown counts as 0
        self.utilisation: dict[PoolKey, float] = {}
        # busy slots that have not reported task.started, by the time their assignment may lapse:
        # a heap of (time, slot id), where an entry whose slot has since changed (its time is no
        # longer the one in _lapse_at) is left in place and skipped when it comes up; pushing is
        # cheaper than keeping a sorted list, and slots change state at every assignment
        self._lapse_heap: list[tuple[int, str]] = []
        self._lapse_at: dict[str, int] = {}
        self.dirty: set[str] = set()
        self.dirty_utilisation: set[PoolKey] = set()

    # -- queries ---------------------------------------------------------------------------

    def get(self, slot_id: str) -> SlotRecord | None:
        return self.slots.get(slot_id)

    def is_live(self, record: SlotRecord, now_ms: int) -> bool:
        return now_ms - record.last_heard_ms <= self.stale_after_ms

    def utilisation_of(self, account: str, model: str) -> float:
        return self.utilisation.get((account, model), 0.0)

    def stale_free_count(self, key: PoolKey, now_ms: int) -> int:
        pool = self.pools.get(key)
        if pool is None:
            return 0
        by_heard = pool.free_by_heard
        if not by_heard or by_heard[0][0] >= now_ms - self.stale_after_ms:
            return 0  # the usual case, answered by the longest silent free slot alone
        return int(by_heard.bisect_left((now_ms - self.stale_after_ms, "")))

    def stale_free_ids(self, key: PoolKey, now_ms: int, limit: int) -> list[str]:
        """Up to `limit` stale free slots of the pool, longest silent first."""
        pool = self.pools[key]
        count = min(limit, self.stale_free_count(key, now_ms))
        return [slot_id for _, slot_id in pool.free_by_heard.first(count)]

    def live_free_ids(self, key: PoolKey, now_ms: int, limit: int) -> list[str]:
        """Up to `limit` live free slots of the pool, smallest id first."""
        pool = self.pools.get(key)
        if pool is None:
            return []
        if not self.stale_free_count(key, now_ms):  # the usual case: every free slot is live
            return pool.free.first(limit)
        found: list[str] = []
        for slot_id in pool.free:
            if len(found) >= limit:
                break
            if self.is_live(self.slots[slot_id], now_ms):
                found.append(slot_id)
        return found

    def first_live_free(self, key: PoolKey, now_ms: int) -> str | None:
        pool = self.pools.get(key)
        if pool is None or not pool.free:
            return None
        if not self.stale_free_count(key, now_ms):
            return pool.free[0]
        found = self.live_free_ids(key, now_ms, 1)
        return found[0] if found else None

    def pools_with_live_free(self, now_ms: int) -> Iterator[PoolKey]:
        for key, pool in self.pools.items():
            if len(pool.free) > self.stale_free_count(key, now_ms):
                yield key

    def lapsed(self, now_ms: int) -> list[str]:
        """Busy, unstarted slots past the assignment timeout and silent past the staleness window."""
        heap, due = self._lapse_heap, {}
        while heap and heap[0][0] < now_ms:
            at, slot_id = heapq.heappop(heap)
            if self._lapse_at.get(slot_id) == at:
                due[slot_id] = at
        for slot_id, at in due.items():  # still due until the slot changes: back on the heap
            heapq.heappush(heap, (at, slot_id))
        return list(due)

    def counts(self) -> dict[str, int]:
        out = {state.value: 0 for state in SlotState}
        for pool in self.pools.values():
            out["free"] += len(pool.free)
            out["busy"] += len(pool.busy)
            out["gone"] += len(pool.gone)
        return out

    # -- changes ---------------------------------------------------------------------------

    def load(self, record: SlotRecord) -> None:
        """Put a record back from a snapshot, without marking it dirty."""
        self.slots[record.slot_id] = record
        self._index(record)

    def restore(self, slots: list[dict[str, Any]], utilisation: dict[str, float]) -> list[SlotRecord]:
        """Load the snapshot's slot records and utilisation ("account<UTIL_SEP>model" -> 0..1);
        returns the records loaded."""
        records = [SlotRecord.from_json(doc) for doc in slots]
        for record in records:
            self.load(record)
        for key, value in utilisation.items():
            self.utilisation[split_utilisation_key(key)] = value
        return records

    def drain_utilisation(self) -> dict[str, float]:
        """The utilisation changed since the last drain, by snapshot key."""
        changed = {utilisation_key(*pool): self.utilisation[pool] for pool in self.dirty_utilisation}
        self.dirty_utilisation.clear()
        return changed

    def mark_free(self, *, slot_id: str, model: str, account: str, now_ms: int) -> SlotRecord | None:
        """Register or free a slot; returns its previous record (None if new), unchanged: the
        ledger holds a new one."""
        free = SlotRecord(
            slot_id=slot_id, model=model, account=account, state=SlotState.FREE, since_ms=now_ms, last_heard_ms=now_ms
        )
        return self._replace(free)

    def heard(self, slot_id: str, now_ms: int) -> None:
        """A heartbeat: a slot that is not gone counts as heard from now."""
        record = self.slots.get(slot_id)
        if record is None or record.state is SlotState.GONE:
            return
        self._unindex(record)
        record.last_heard_ms = max(record.last_heard_ms, now_ms)
        self._index(record)
        self.dirty.add(slot_id)

    def mark_gone(self, slot_id: str, now_ms: int) -> SlotRecord | None:
        """The slot left (or its assignment lapsed); returns its previous record (None if
        unknown), unchanged, so the task it held can still be read from it."""
        previous = self.slots.get(slot_id)
        if previous is None:
            return None
        model, account, heard_ms = previous.model, previous.account, previous.last_heard_ms
        gone = SlotRecord(
            slot_id=slot_id, model=model, account=account, state=SlotState.GONE, since_ms=now_ms, last_heard_ms=heard_ms
        )
        return self._replace(gone)

    def mark_busy(
        self, slot_id: str, *, task_id: str, decision_id: str, now_ms: int, held: dict[str, Any] | None = None
    ) -> None:
        record = self.slots[slot_id]
        self._unindex(record)
        record.state = SlotState.BUSY
        record.since_ms = now_ms
        record.task_id = task_id
        record.decision_id = decision_id
        record.started = False
        record.held = held
        self._index(record)
        self.dirty.add(slot_id)

    def mark_started(self, slot_id: str, task_id: str, now_ms: int) -> None:
        """The slot began `task_id`; a report about a task the slot no longer holds changes nothing."""
        record = self.slots.get(slot_id)
        if record is None or record.state is not SlotState.BUSY or record.task_id != task_id:
            return
        self._unindex(record)
        record.started = True
        record.held = None
        record.last_heard_ms = max(record.last_heard_ms, now_ms)
        self._index(record)
        self.dirty.add(slot_id)

    def set_utilisation(self, *, account: str, model: str, utilisation: float) -> None:
        self.utilisation[(account, model)] = utilisation
        self.dirty_utilisation.add((account, model))

    # -- indexes ---------------------------------------------------------------------------

    def _replace(self, record: SlotRecord) -> SlotRecord | None:
        """Hold `record` for its slot; returns the record it replaces (None if new), left as it was."""
        previous = self.slots.get(record.slot_id)
        if previous is not None:
            self._unindex(previous)
        self.slots[record.slot_id] = record
        self._index(record)
        self.dirty.add(record.slot_id)
        return previous

    def _index(self, record: SlotRecord) -> None:
        pool = self._pool(record)
        pool.version += 1
        pool.bucket(record.state).add(record.slot_id)
        if record.state is SlotState.FREE:
            pool.free_by_heard.add((record.last_heard_ms, record.slot_id))
        elif record.state is SlotState.BUSY and not record.started:
            at = max(record.since_ms + self.assignment_timeout_ms, record.last_heard_ms + self.stale_after_ms)
            self._lapse_at[record.slot_id] = at
            heapq.heappush(self._lapse_heap, (at, record.slot_id))
            if len(self._lapse_heap) > 2 * len(self._lapse_at) + 1024:  # mostly skipped entries
                self._lapse_heap = [(due, slot_id) for slot_id, due in self._lapse_at.items()]
                heapq.heapify(self._lapse_heap)

    def _unindex(self, record: SlotRecord) -> None:
        pool = self._pool(record)
        pool.version += 1
        pool.bucket(record.state).remove(record.slot_id)
        if record.state is SlotState.FREE:
            pool.free_by_heard.remove((record.last_heard_ms, record.slot_id))
        self._lapse_at.pop(record.slot_id, None)

    def _pool(self, record: SlotRecord) -> Pool:
        key = (record.model, record.account)
        pool = self.pools.get(key)
        if pool is None:
            pool = self.pools[key] = Pool()
        return pool

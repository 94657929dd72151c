"""The slot ledger: every slot the router knows, grouped in pools of one (model, account)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from sortedcontainers import SortedList


class SlotState(StrEnum):
    FREE = "free"
    BUSY = "busy"
    GONE = "gone"


@dataclass(slots=True, kw_only=True)
class SlotRecord:
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

    def to_json(self) -> dict[str, Any]:
        return {
            "slot_id": self.slot_id,
            "model": self.model,
            "account": self.account,
            "state": self.state.value,
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


PoolKey = tuple[str, str]  # (model, account)


@dataclass(slots=True)
class Pool:
    """Slot ids of one (model, account) by state, sorted so the smallest id wins ties cheaply."""

    free: SortedList[str] = field(default_factory=SortedList)
    busy: SortedList[str] = field(default_factory=SortedList)
    gone: SortedList[str] = field(default_factory=SortedList)

    def bucket(self, state: SlotState) -> SortedList[str]:
        return {SlotState.FREE: self.free, SlotState.BUSY: self.busy, SlotState.GONE: self.gone}[state]

    def __len__(self) -> int:
        return len(self.free) + len(self.busy) + len(self.gone)


class SlotLedger:
    def __init__(self, *, stale_after_ms: int) -> None:
        self.stale_after_ms = stale_after_ms
        self.slots: dict[str, SlotRecord] = {}
        self.pools: dict[PoolKey, Pool] = {}
        # quota utilisation per (account, model), 0..1; unknown counts as 0
        self.utilisation: dict[PoolKey, float] = {}
        self.unstarted: set[str] = set()  # busy slots that have not reported task.started
        self.dirty: set[str] = set()
        self.dirty_utilisation: set[PoolKey] = set()

    # -- queries ---------------------------------------------------------------------------

    def get(self, slot_id: str) -> SlotRecord | None:
        return self.slots.get(slot_id)

    def is_live(self, record: SlotRecord, now_ms: int) -> bool:
        return now_ms - record.last_heard_ms <= self.stale_after_ms

    def utilisation_of(self, account: str, model: str) -> float:
        return self.utilisation.get((account, model), 0.0)

    def first_live_free(self, key: PoolKey, now_ms: int) -> str | None:
        pool = self.pools.get(key)
        if pool is None:
            return None
        for slot_id in pool.free:
            if self.is_live(self.slots[slot_id], now_ms):
                return str(slot_id)
        return None

    def pools_with_live_free(self, now_ms: int) -> Iterator[PoolKey]:
        for key, pool in self.pools.items():
            if pool.free and self.first_live_free(key, now_ms) is not None:
                yield key

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
        self._pool(record).bucket(record.state).add(record.slot_id)
        if record.state is SlotState.BUSY and not record.started:
            self.unstarted.add(record.slot_id)

    def mark_free(self, *, slot_id: str, model: str, account: str, now_ms: int) -> SlotRecord | None:
        """Register or free a slot; returns what it was before (None if new)."""
        previous = self.slots.get(slot_id)
        before = None
        if previous is not None:
            before = SlotRecord(**{k: getattr(previous, k) for k in SlotRecord.__slots__})
            self._pool(previous).bucket(previous.state).remove(slot_id)
        record = SlotRecord(
            slot_id=slot_id, model=model, account=account, state=SlotState.FREE, since_ms=now_ms, last_heard_ms=now_ms
        )
        self.slots[slot_id] = record
        self._pool(record).free.add(slot_id)
        self.unstarted.discard(slot_id)
        self.dirty.add(slot_id)
        return before

    def heard(self, slot_id: str, now_ms: int) -> bool:
        """A heartbeat; True when it brought a stale free slot back to life."""
        record = self.slots.get(slot_id)
        if record is None or record.state is SlotState.GONE:
            return False
        revived = record.state is SlotState.FREE and not self.is_live(record, now_ms)
        record.last_heard_ms = max(record.last_heard_ms, now_ms)
        self.dirty.add(slot_id)
        return revived

    def mark_gone(self, slot_id: str, now_ms: int) -> SlotRecord | None:
        record = self.slots.get(slot_id)
        if record is None:
            return None
        before = SlotRecord(**{k: getattr(record, k) for k in SlotRecord.__slots__})
        self._move(record, SlotState.GONE, now_ms)
        record.task_id = None
        record.decision_id = None
        record.started = False
        record.held = None
        self.unstarted.discard(slot_id)
        return before

    def mark_busy(
        self, slot_id: str, *, task_id: str, decision_id: str, now_ms: int, held: dict[str, Any] | None = None
    ) -> None:
        record = self.slots[slot_id]
        self._move(record, SlotState.BUSY, now_ms)
        record.task_id = task_id
        record.decision_id = decision_id
        record.started = False
        record.held = held
        self.unstarted.add(slot_id)

    def mark_started(self, slot_id: str, task_id: str, now_ms: int) -> bool:
        record = self.slots.get(slot_id)
        if record is None or record.state is not SlotState.BUSY or record.task_id != task_id:
            return False
        record.started = True
        record.held = None
        self.unstarted.discard(slot_id)
        record.last_heard_ms = max(record.last_heard_ms, now_ms)
        self.dirty.add(slot_id)
        return True

    def set_utilisation(self, *, account: str, model: str, utilisation: float) -> None:
        self.utilisation[(account, model)] = utilisation
        self.dirty_utilisation.add((account, model))

    def _move(self, record: SlotRecord, state: SlotState, now_ms: int) -> None:
        pool = self._pool(record)
        pool.bucket(record.state).remove(record.slot_id)
        pool.bucket(state).add(record.slot_id)
        record.state = state
        record.since_ms = now_ms
        self.dirty.add(record.slot_id)

    def _pool(self, record: SlotRecord) -> Pool:
        key = (record.model, record.account)
        pool = self.pools.get(key)
        if pool is None:
            pool = self.pools[key] = Pool()
        return pool

"""The ledger's snapshot form: what changed since the last drain, and waiting tasks as JSON.

The worker writes these into Redis with each batch's outputs, and a new leader rebuilds the
ledger from them (ARCHITECTURE.md invariant 2).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from router.values import task_from_json, task_to_json
from router.waiting import WaitingTask


@dataclass(slots=True, kw_only=True)
class LedgerChanges:
    """What changed since the last drain: the worker writes it with the batch's outputs."""

    slots: dict[str, dict[str, Any]] = field(default_factory=dict)
    waiting: dict[str, dict[str, Any] | None] = field(default_factory=dict)  # None: no longer waiting
    assigned: dict[str, dict[str, Any] | None] = field(default_factory=dict)  # None: forgotten
    ev_added: list[float] = field(default_factory=list)
    utilisation: dict[str, float] = field(default_factory=dict)  # "account\x1fmodel" -> 0..1
    budgets: dict[str, list[Any]] | None = None  # spend per budget (BudgetBook.to_json), when it changed
    escalations: dict[str, dict[str, Any] | None] = field(default_factory=dict)  # None: chain over
    quality: dict[str, str] = field(default_factory=dict)  # "model\x1flayer" -> recent outcomes
    # router/service_rates.py's snapshot fields that changed (a model's service time, the ETA correction)
    rates: dict[str, dict[str, Any]] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(
            self.slots
            or self.waiting
            or self.assigned
            or self.ev_added
            or self.utilisation
            or self.budgets is not None
            or self.escalations
            or self.quality
            or self.rates
        )


def waiting_to_json(w: WaitingTask) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "task": task_to_json(w.task),
        "ev": w.ev,
        "seq": w.seq,
        "since_ms": w.since_ms,
        "models": sorted(w.models),
        "min_tier": w.min_tier,
        "await_decision_id": w.await_decision_id,
        "ev_rank": w.ev_rank,
    }
    # left out while unknown, as a snapshot written before they existed has them
    if w.scale_ms is not None:
        doc["scale_ms"] = w.scale_ms
    if w.first_estimate_s is not None:
        doc["first_estimate_s"] = w.first_estimate_s
    if w.first_turn_s is not None:
        doc["first_turn_s"] = w.first_turn_s
    return doc


def waiting_from_json(doc: dict[str, Any]) -> WaitingTask:
    return WaitingTask(
        task=task_from_json(doc["task"]),
        ev=float(doc["ev"]),
        seq=int(doc["seq"]),
        since_ms=int(doc["since_ms"]),
        models=frozenset(doc["models"]),
        min_tier=int(doc["min_tier"]),
        await_decision_id=doc.get("await_decision_id"),
        scale_ms=_optional_float(doc.get("scale_ms")),
        ev_rank=float(doc.get("ev_rank", 0.5)),
        first_estimate_s=_optional_float(doc.get("first_estimate_s")),
        first_turn_s=_optional_float(doc.get("first_turn_s")),
    )


def _optional_float(value: Any) -> float | None:
    return None if value is None else float(value)


@dataclass(slots=True)
class WaitingChanges:
    """Waiting tasks changed since the last drain, in their latest state (None: no longer waiting),
    serialised once per batch when drained. A task first filed since then that the snapshot does
    not hold is `unsaved`: dropping it again before the drain needs no delete, it was never written."""

    latest: dict[str, WaitingTask | None] = field(default_factory=dict)
    unsaved: set[str] = field(default_factory=set)

    def filed(self, w: WaitingTask, *, new: bool = False) -> None:
        """`w` waits, in this state; `new`: it was not waiting before."""
        task_id = w.task.task_id
        if new and task_id not in self.latest:  # else the snapshot holds it: a delete is queued
            self.unsaved.add(task_id)
        self.latest[task_id] = w

    def dropped(self, task_id: str) -> None:
        if task_id in self.unsaved:
            self.unsaved.discard(task_id)
            self.latest.pop(task_id, None)
        else:
            self.latest[task_id] = None

    def drain(self) -> dict[str, dict[str, Any] | None]:
        out = {k: None if w is None else waiting_to_json(w) for k, w in self.latest.items()}
        self.latest, self.unsaved = {}, set()
        return out

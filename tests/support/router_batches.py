"""The queue and matching-order tests' shorthand over the one router harness (router_harness.py):
batches at given instants, and a measured haiku service time."""

from __future__ import annotations

from typing import Any

from router.catalog import load_catalog
from router.values import Decision, Event, Outcome, SlotFree, Usage
from support.router_harness import T0, RouterHarness, decisions, pending
from support.router_harness import free as free_slot

CATALOG = load_catalog()
__all__ = ["CATALOG", "T0", "Run", "assigned", "free", "pending"]


def free(slot_id: str, model: str, completed: str | None = None) -> SlotFree:
    """slot.free on the default account, reporting `completed` (a task id) if given."""
    return free_slot(slot_id, model, completed=Usage(task_id=completed) if completed else None)


def assigned(decisions: list[Decision]) -> list[str]:
    """The tasks assigned, in order."""
    return [d.task.task_id for d in decisions if d.outcome is Outcome.ASSIGNED]


class Run:
    """A RouterHarness whose batches happen at given instants and return their decisions."""

    def __init__(self, **config: Any) -> None:
        self.h = RouterHarness(CATALOG, **config)
        self.router = self.h.router

    def batch(self, now_ms: int, *events: Event) -> list[Decision]:
        """Apply the events as one batch at `now_ms`, then the matching round: its decisions. Silent
        slots are not lapsed: these tests jump the clock by many service times without heartbeats."""
        effects = self.h.apply(*events, now_ms=now_ms)
        return decisions(effects + self.router.match(now_ms=now_ms))

    def measure_haiku(self, service_ms: int, at_ms: int) -> int:
        """One haiku task served in `service_ms`, on a slot that then stays busy with another task;
        returns the instant it finished."""
        self.batch(at_ms, free("m1", "haiku"), pending("measured"))
        self.batch(at_ms + service_ms, free("m1", "haiku", completed="measured"), pending("keeps-m1-busy", 100))
        return at_ms + service_ms

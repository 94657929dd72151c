"""A router engine driven batch by batch at given instants, with the event builders the queue and
matching-order tests share (plain values, no Redis)."""

from __future__ import annotations

from typing import Any

from router.catalog import load_catalog
from router.engine import Router, RouterConfig
from router.values import Decision, Event, Outcome, SlotFree, Task, TaskPending, Usage

CATALOG = load_catalog()
T0 = 1_700_000_000_000


def pending(task_id: str, priority: int = 50, requires: dict[str, int] | None = None, **kw: Any) -> TaskPending:
    return TaskPending(task=Task(task_id=task_id, priority=priority, requires=dict(requires or {}), **kw))


def free(slot_id: str, model: str, completed: str | None = None) -> SlotFree:
    usage = Usage(task_id=completed) if completed else None
    return SlotFree(slot_id=slot_id, model=model, account="default", completed=usage)


def assigned(decisions: list[Decision]) -> list[str]:
    """The tasks assigned, in order."""
    return [d.task.task_id for d in decisions if d.outcome is Outcome.ASSIGNED]


class Run:
    def __init__(self, **config: Any) -> None:
        self.router = Router(CATALOG, config=RouterConfig(**config))
        self.n = 0

    def batch(self, now_ms: int, *events: Event) -> list[Decision]:
        """Apply the events as one batch at `now_ms`, then the matching round: its decisions."""
        self.n += 1
        self.router.begin_batch(f"{self.n}-0")
        out = []
        for i, event in enumerate(events):
            out += self.router.apply(event, event_id=f"{self.n}-{i}", now_ms=now_ms)
        out += self.router.match(now_ms=now_ms)
        return [e for e in out if isinstance(e, Decision)]

    def measure_haiku(self, service_ms: int, at_ms: int) -> int:
        """One haiku task served in `service_ms`, on a slot that then stays busy with another task;
        returns the instant it finished."""
        self.batch(at_ms, free("m1", "haiku"), pending("measured"))
        self.batch(at_ms + service_ms, free("m1", "haiku", completed="measured"), pending("keeps-m1-busy", 100))
        return at_ms + service_ms

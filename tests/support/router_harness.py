"""The one way router tests drive a Router: events in batches, as the worker feeds them, on plain
values (no Redis, no clock).

`RouterHarness` numbers batches and entries like a stream (batch n's entries are `n-0`, `n-1`,
...), keeps the time the events happen at, and reads the decisions back. With `snapshot=True` it
also keeps what the worker would persist after each batch (`LedgerSnapshot`), so that
`restarted()` gives the Router a restarted worker would rebuild. The event builders (`pending`,
`free`) fill in what a test does not care about."""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from typing import Any

from router.budgets import Budget
from router.catalog import Catalog
from router.engine import Effect, LedgerChanges, Router, RouterConfig
from router.values import Decision, Event, Outcome, SlotFree, Task, TaskPending, Usage

T0 = 1_700_000_000_000  # the harness clock's start, epoch milliseconds

Scorer = Callable[[Task], float]


def pending(task_id: str, priority: int = 50, requires: Mapping[str, int] | None = None, **kw: Any) -> TaskPending:
    """A task.pending whose wire fields are those given (plus `fields=` for extra wire fields)."""
    fields = {"task_id": task_id, "priority": priority, "requires": dict(requires or {}), **kw.pop("fields", {})}
    task = Task(task_id=task_id, priority=priority, requires=dict(requires or {}), fields=fields, **kw)
    return TaskPending(task=task)


def free(slot_id: str, model: str, account: str = "default", completed: Usage | None = None) -> SlotFree:
    return SlotFree(slot_id=slot_id, model=model, account=account, completed=completed)


def decisions(effects: list[Effect]) -> list[Decision]:
    return [e for e in effects if isinstance(e, Decision)]


def assigned(effects: list[Effect]) -> list[tuple[str, str]]:
    """(task id, slot id) of every assignment, in decision order."""
    return [(d.task.task_id, d.chosen.slot_id) for d in decisions(effects) if d.chosen is not None]


def waits(effects: list[Effect]) -> list[str]:
    """Task ids of the await_slot announcements, in decision order."""
    return [d.task.task_id for d in decisions(effects) if d.outcome is Outcome.AWAIT_SLOT]


class LedgerSnapshot:
    """What the worker persists from drain_changes(), kept the way the Redis hashes keep it."""

    def __init__(self, ev_window: int) -> None:
        self.ev_window = ev_window
        self.slots: dict[str, dict[str, Any]] = {}
        self.waiting: dict[str, dict[str, Any]] = {}
        self.assigned: dict[str, dict[str, Any]] = {}
        self.ev: list[float] = []
        self.utilisation: dict[str, float] = {}
        self.budgets: dict[str, list[Any]] = {}

    def apply(self, changes: LedgerChanges) -> None:
        self.slots.update(changes.slots)
        for table, delta in ((self.waiting, changes.waiting), (self.assigned, changes.assigned)):
            for key, value in delta.items():
                if value is None:
                    table.pop(key, None)
                else:
                    table[key] = value
        self.ev = (self.ev + changes.ev_added)[-self.ev_window :]
        self.utilisation.update(changes.utilisation)
        for name, spend in (changes.budgets or {}).items():
            if spend is None:
                self.budgets.pop(name, None)
            else:
                self.budgets[name] = spend

    def restore(
        self, catalog: Catalog, config: RouterConfig, scorer: Scorer | None = None, budgets: tuple[Budget, ...] = ()
    ) -> Router:
        router = Router(catalog, config=config, scorer=scorer, budgets=budgets)
        router.restore(
            slots=list(self.slots.values()),
            waiting=list(self.waiting.values()),
            assigned=dict(self.assigned),
            ev_values=list(self.ev),
            utilisation=dict(self.utilisation),
            budgets=dict(self.budgets),
        )
        return router


class RouterHarness:
    """A Router over `catalog` with RouterConfig(**config), fed one batch at a time.

    `batch()` is a whole worker turn: apply the events, lapse overdue assignments, run the matching
    round. `apply()` and `finish()` are its two halves, for a test that looks at what the events
    alone returned or spreads one round's events over several batches."""

    def __init__(
        self,
        catalog: Catalog,
        *,
        scorer: Scorer | None = None,
        snapshot: bool = False,
        budgets: tuple[Budget, ...] = (),
        **config: Any,
    ) -> None:
        self.catalog = catalog
        self.config = RouterConfig(**config)
        self.scorer = scorer
        self.budgets = budgets
        self.router = Router(catalog, config=self.config, scorer=scorer, budgets=budgets)
        self.snapshot = LedgerSnapshot(self.config.ev_window) if snapshot else None
        self.n = 0  # batches begun
        self.now_ms = T0

    def batch(self, *events: Event, now_ms: int | None = None) -> list[Effect]:
        effects = self.apply(*events, now_ms=now_ms)
        return effects + self.finish()

    def apply(self, *events: Event, now_ms: int | None = None) -> list[Effect]:
        """Begin batch n (its id `n-<number of events>`) and apply its events, entry ids `n-0`, ..."""
        self.n += 1
        if now_ms is not None:
            self.now_ms = now_ms
        self.router.begin_batch(f"{self.n}-{len(events)}")
        effects: list[Effect] = []
        for i, event in enumerate(events):
            effects += self.router.apply(event, event_id=f"{self.n}-{i}", now_ms=self.now_ms)
        return effects

    def finish(self) -> list[Effect]:
        """End the batch as the worker does: lapse overdue assignments, match, persist."""
        effects = self.router.expire_assignments(now_ms=self.now_ms)
        effects += self.router.match(now_ms=self.now_ms)
        if self.snapshot is not None:
            self.snapshot.apply(self.router.drain_changes())
        return effects

    def advance(self, ms: int) -> None:
        self.now_ms += ms

    def restarted(self, catalog: Catalog | None = None) -> RouterHarness:
        """A harness whose Router is rebuilt from this one's snapshot (under `catalog`, if the
        catalogue changed across the restart), at the same time and batch count."""
        assert self.snapshot is not None, "RouterHarness(snapshot=True) keeps what a restart restores"
        other = copy.copy(self)
        other.catalog = catalog or self.catalog
        other.snapshot = copy.deepcopy(self.snapshot)
        other.router = other.snapshot.restore(other.catalog, self.config, self.scorer, self.budgets)
        return other

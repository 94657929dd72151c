"""Dispatch policies side by side: four baselines and the router itself (driven through router.engine).

Every policy sees the same calls from the event loop (sim.des): `begin` a batch, `arrive` tasks,
`free` slots (with the failure, if the attempt failed), `quota` updates, then `match`, which returns
(task id, slot id) pairs to start now.

After a failed attempt every policy but `fifo` does what the router does (router/escalation.py),
with the router's default caps: a `capability` failure escalates (the task waits again, in its old
place, for a model of a higher tier than the one that failed, among the models the policy would
use), a `transient` one retries at the same rules; past a cap, or with no higher tier left, the
task is given up. `fifo` (any model, no capability check) retries transient failures only.
"""

from __future__ import annotations

import bisect
import heapq
from collections import deque
from collections.abc import Callable
from dataclasses import replace
from typing import Protocol

from router.budgets import Budget
from router.catalog import Catalog
from router.engine import Router, RouterConfig
from router.escalation import Limits
from router.values import (
    Decision,
    Failure,
    Outcome,
    QuotaUtilisation,
    ReasonCode,
    SlotFree,
    Task,
    TaskPending,
    TaskResult,
    Usage,
)
from sim.fleet import SlotSpec
from sim.workload import SimTask

POLICIES = ("fifo", "fifo-capable", "cheapest", "router", "premium")
# Not a policy a deployment could run but a reference: fifo-capable that knows in hindsight the run's
# final top EV decile and starts those tasks before any other, every task on a free capable slot of
# the lowest tier (keeping higher tiers for the tasks that need them). Where even its top-EV p95 is
# over 0.2x fifo-capable's, the reports take the goal as out of reach of a work-conserving
# non-preemptive order and compare the router with it.
ORACLE = "oracle-top-ev"
# the simulated slots send no heartbeats, so the router must never judge one stale
NEVER_STALE_S = 1e12


class Dispatcher(Protocol):
    name: str
    unroutable: list[str]
    first_eta: dict[str, tuple[int, float]]  # task id -> (when it first awaited, ETA then in s)
    budget_waits_ms: dict[str, int]  # task id -> how long a spent budget kept it waiting (router only)

    def begin(self, batch: int, now_ms: int) -> None: ...
    def register(self, slot: SlotSpec, now_ms: int) -> None: ...
    def arrive(self, task: SimTask, now_ms: int) -> None: ...
    def free(self, slot: SlotSpec, done: SimTask, now_ms: int, failure: Failure | None = None) -> None: ...
    def quota(self, model: str, account: str, utilisation: float) -> None: ...
    def match(self, now_ms: int) -> list[tuple[str, str]]: ...


Allowed = Callable[[SimTask, int], tuple[str, ...]]  # (task, lowest tier it may use now) -> models
Eta = Callable[[Router, str, int], float | None]  # (router, task id, now ms) -> ETA in s, or None
Prefer = Callable[[str], int]  # model -> rank among free models (lower first); ties: longest free
Rank = Callable[[SimTask], int]  # task -> rank in the queue (lower first); ties: arrival order


class QueueDispatcher:
    """Arrival order (within a `rank`, for the oracle). A task may start on a free slot of its allowed
    models (the longest-free one, or of the model `prefer` ranks first); a task with no free allowed
    slot waits without holding back later tasks that have one."""

    def __init__(
        self,
        name: str,
        allowed: Allowed,
        prefer: Prefer | None = None,
        rank: Rank | None = None,
        *,
        tiers: dict[str, int] | None = None,
        escalates: bool = True,
        limits: Limits | None = None,
    ) -> None:
        self.name = name
        self.allowed = allowed
        self.prefer = prefer
        self.rank = rank
        self.tiers = tiers or {}
        self.escalates = escalates
        self.limits = limits or Limits()
        # task id -> (its queue key, escalations, retries, lowest tier now) once it has started
        self._chains: dict[str, tuple[tuple[int, int], int, int, int]] = {}
        self._started: dict[str, tuple[int, int]] = {}  # task id -> its queue key, while it runs
        self.unroutable: list[str] = []
        self.first_eta: dict[str, tuple[int, float]] = {}  # the baselines give no ETA
        self.budget_waits_ms: dict[str, int] = {}  # nor know budgets
        self._free: dict[str, list[tuple[int, str]]] = {}  # model -> heap of (free since ms, slot id)
        self._queues: dict[tuple[int, tuple[str, ...]], deque[tuple[tuple[int, int], SimTask]]] = {}
        self._seq = 0

    def begin(self, batch: int, now_ms: int) -> None:
        pass

    def register(self, slot: SlotSpec, now_ms: int) -> None:
        heapq.heappush(self._free.setdefault(slot.model, []), (now_ms, slot.slot_id))

    def arrive(self, task: SimTask, now_ms: int) -> None:
        models = self.allowed(task, 0)
        if not models:
            self.unroutable.append(task.task_id)
            return
        self._seq += 1
        rank = 0 if self.rank is None else self.rank(task)
        # one queue per (rank, models) keeps each queue in arrival order, its head the earliest
        self._queues.setdefault((rank, models), deque()).append(((rank, self._seq), task))

    def free(self, slot: SlotSpec, done: SimTask, now_ms: int, failure: Failure | None = None) -> None:
        self.register(slot, now_ms)
        place = self._started.pop(done.task_id, None)
        if failure is None or place is None:
            self._chains.pop(done.task_id, None)
            return
        _, escalations, retries, floor = self._chains.get(done.task_id, (place, 0, 0, 0))
        if failure is Failure.CAPABILITY and self.escalates and escalations < self.limits.max_escalations:
            escalations, floor = escalations + 1, self.tiers.get(slot.model, 0) + 1
        elif failure is Failure.TRANSIENT and retries < self.limits.max_retries:
            retries += 1
        else:
            self._chains.pop(done.task_id, None)
            return  # given up
        models = self.allowed(done, floor)
        if not models:
            self._chains.pop(done.task_id, None)
            return  # no higher tier to escalate to: given up
        self._chains[done.task_id] = (place, escalations, retries, floor)
        # back in its old place: the queue stays in arrival order
        bisect.insort(self._queues.setdefault((place[0], models), deque()), (place, done), key=lambda item: item[0])

    def quota(self, model: str, account: str, utilisation: float) -> None:
        pass  # the baselines ignore quota, as today's dispatcher does

    def match(self, now_ms: int) -> list[tuple[str, str]]:
        started: list[tuple[str, str]] = []
        while True:
            best: tuple[tuple[int, int], tuple[int, tuple[str, ...]]] | None = None
            for key, queue in self._queues.items():
                models = key[1]
                if queue and (best is None or queue[0][0] < best[0]) and any(self._free.get(m) for m in models):
                    best = (queue[0][0], key)
            if best is None:
                return started
            place, task = self._queues[best[1]].popleft()
            self._started[task.task_id] = place
            model = min((m for m in best[1][1] if self._free.get(m)), key=self._slot_order)
            _, slot_id = heapq.heappop(self._free[model])
            started.append((task.task_id, slot_id))

    def _slot_order(self, model: str) -> tuple[int, int, str]:
        free_since, slot_id = self._free[model][0]
        return (0 if self.prefer is None else self.prefer(model), free_since, slot_id)


class RouterDispatcher:
    """The router's own engine (POLICY.md), fed the same events the worker would read from Redis."""

    def __init__(
        self,
        catalog: Catalog,
        *,
        name: str = "router",
        config: RouterConfig | None = None,
        eta: Eta | None = None,
        budgets: tuple[Budget, ...] = (),
    ) -> None:
        self.name = name
        self.eta = eta  # None: the ETA the await decision carries (its queue_place)
        self.catalog = catalog
        settings = replace(config or RouterConfig(), stale_after_s=NEVER_STALE_S)
        self.router = Router(catalog, config=settings, budgets=budgets)
        self.unroutable: list[str] = []
        self.first_eta: dict[str, tuple[int, float]] = {}
        # tasks a spent budget kept waiting: task id -> when it began waiting for that reason, until
        # it starts; then the time it waited is added to budget_waits_ms
        self.budget_waiting: dict[str, int] = {}
        self.budget_waits_ms: dict[str, int] = {}
        self.estimates: dict[str, float] = {}  # task id -> its latest assignment's est_cost_usd
        self._events = 0

    def _event_id(self, now_ms: int) -> str:
        self._events += 1
        return f"{now_ms}-{self._events}"

    def begin(self, batch: int, now_ms: int) -> None:
        self.router.begin_batch(f"{now_ms}-{batch}")

    def register(self, slot: SlotSpec, now_ms: int) -> None:
        event = SlotFree(slot_id=slot.slot_id, model=slot.model, account=slot.account)
        self.router.apply(event, event_id=self._event_id(now_ms), now_ms=now_ms)

    def arrive(self, task: SimTask, now_ms: int) -> None:
        event = TaskPending(task=to_router_task(task))
        self.router.apply(event, event_id=self._event_id(now_ms), now_ms=now_ms)

    def free(self, slot: SlotSpec, done: SimTask, now_ms: int, failure: Failure | None = None) -> None:
        """`slot.free` with `completed`: the tokens, their list-price cost, and the outcome."""
        usage = Usage(
            task_id=done.task_id,
            input_tokens=done.input_tokens,
            output_tokens=done.output_tokens,
            cost_usd=self.catalog.models[slot.model].cost_usd(
                input_tokens=done.input_tokens, output_tokens=done.output_tokens
            ),
            outcome=TaskResult.SUCCEEDED if failure is None else TaskResult.FAILED,
            failure=failure,
        )
        event = SlotFree(slot_id=slot.slot_id, model=slot.model, account=slot.account, completed=usage)
        for effect in self.router.apply(event, event_id=self._event_id(now_ms), now_ms=now_ms):
            if isinstance(effect, Decision):
                self._note_budget_wait(effect, now_ms)

    def quota(self, model: str, account: str, utilisation: float) -> None:
        event = QuotaUtilisation(model=model, account=account, utilisation=utilisation)
        self.router.apply(event, event_id="quota", now_ms=0)

    def match(self, now_ms: int) -> list[tuple[str, str]]:
        started: list[tuple[str, str]] = []
        for decision in self.router.match(now_ms=now_ms):
            self._note_budget_wait(decision, now_ms)
            if decision.outcome is Outcome.ASSIGNED and decision.chosen is not None:
                started.append((decision.task.task_id, decision.chosen.slot_id))
                self.estimates[decision.task.task_id] = decision.est_cost_usd or 0.0
            elif decision.outcome is Outcome.UNROUTABLE:
                self.unroutable.append(decision.task.task_id)
            elif decision.outcome is Outcome.AWAIT_SLOT and decision.task.task_id not in self.first_eta:
                self._note_eta(decision, now_ms)
        return started

    def _note_budget_wait(self, decision: Decision, now_ms: int) -> None:
        task_id = decision.task.task_id
        if decision.outcome is Outcome.AWAIT_SLOT and decision.reason_code is ReasonCode.BUDGET_EXHAUSTED:
            self.budget_waiting.setdefault(task_id, now_ms)
        elif decision.outcome is Outcome.ASSIGNED and task_id in self.budget_waiting:
            waited = now_ms - self.budget_waiting.pop(task_id)
            self.budget_waits_ms[task_id] = self.budget_waits_ms.get(task_id, 0) + waited

    def _note_eta(self, decision: Decision, now_ms: int) -> None:
        """Keep the ETA of a task's first await (the router gives none before it has seen a completion)."""
        task_id = decision.task.task_id
        if self.eta is not None:
            eta = self.eta(self.router, task_id, now_ms)
        else:
            eta = None if decision.queue_place is None else decision.queue_place.eta_s
        if eta is not None:
            self.first_eta[task_id] = (now_ms, eta)


def to_router_task(task: SimTask) -> Task:
    return Task(
        task_id=task.task_id,
        priority=task.priority,
        requires=task.requires,
        layer=task.layer,
        ev=task.ev,
        quest_priority=task.quest_priority,
        est_input_tokens=task.input_tokens,
        est_output_tokens=task.output_tokens,
        submitted_at_ms=task.arrival_ms,
    )


def make_policy(
    name: str,
    catalog: Catalog,
    *,
    config: RouterConfig | None = None,
    top_ev: float | None = None,
    budgets: tuple[Budget, ...] = (),
) -> Dispatcher:
    """A fresh dispatcher by name; "router" takes an optional RouterConfig (its settings under test)
    and budgets (the other policies know none), the oracle the run's top-decile EV threshold (tasks
    with EV >= it start first)."""
    tiers = {m.model_id: m.tier for m in catalog.models.values()}
    everything = tuple(sorted(catalog.models))
    premium = tuple(sorted(m.model_id for m in catalog.models.values() if m.is_premium))

    def rateable(task: SimTask, floor: int) -> tuple[str, ...]:
        return tuple(sorted(m.model_id for m in catalog.rateable(task.requires) if m.tier >= floor))

    def cheapest(task: SimTask, floor: int) -> tuple[str, ...]:
        models = [m for m in catalog.rateable(task.requires) if m.tier >= floor]
        if not models:
            return ()
        best = min(
            models,
            key=lambda m: (m.cost_usd(input_tokens=task.input_tokens, output_tokens=task.output_tokens), m.model_id),
        )
        return (best.model_id,)

    if name == "fifo":
        return QueueDispatcher(name, lambda task, floor: everything, tiers=tiers, escalates=False)
    if name == "fifo-capable":
        return QueueDispatcher(name, rateable, tiers=tiers)
    if name == "cheapest":
        return QueueDispatcher(name, cheapest, tiers=tiers)
    if name == "premium":
        return QueueDispatcher(name, lambda task, floor: tuple(m for m in premium if tiers[m] >= floor), tiers=tiers)
    if name == ORACLE:
        if top_ev is None:
            raise ValueError(f"{ORACLE} needs the run's top-decile EV threshold")
        threshold = top_ev
        return QueueDispatcher(
            name,
            rateable,
            prefer=lambda model: catalog.models[model].tier,
            rank=lambda task: 0 if task.ev >= threshold else 1,
            tiers=tiers,
        )
    if name == "router" or name.startswith("router"):
        return RouterDispatcher(catalog, name=name, config=config, budgets=budgets)
    raise ValueError(f"unknown policy {name!r}; known: {', '.join(POLICIES)}")

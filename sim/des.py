"""The discrete-event loop: arrivals and completions in time order, one batch per distinct instant.

Events that share a timestamp form one batch, as the worker's batched read would see them; the
policy matches once per batch. A started task runs for its run time on the slot's tier (its base
run time unless the load model makes it depend on the model) x the pool's speed. With a failure
model (sim.failures) each attempt's outcome is drawn when it finishes and reported to the policy,
which may start the task again (escalation, retry); every attempt is kept.
"""

from __future__ import annotations

import heapq
from collections import deque
from dataclasses import dataclass, field

from router.values import Failure
from sim.failures import FailureModel
from sim.fleet import Fleet
from sim.policies import Dispatcher
from sim.workload import SimTask

HOUR_MS = 3_600_000
_DONE, _ARRIVE = 0, 1  # within an instant, completions are applied before arrivals


@dataclass(frozen=True, slots=True, kw_only=True)
class AttemptRecord:
    model: str
    account: str
    started_ms: int
    finished_ms: int
    failure: Failure | None = None  # None: succeeded

    @property
    def succeeded(self) -> bool:
        return self.failure is None


@dataclass(slots=True, kw_only=True)
class TaskRecord:
    task: SimTask
    started_ms: int | None = None  # the first attempt's start: what the task waited for
    finished_ms: int | None = None  # the latest attempt's end
    slot_id: str | None = None  # the latest attempt's
    model: str | None = None  # the latest attempt's
    attempts: list[AttemptRecord] = field(default_factory=list)  # the finished ones
    attempt_started_ms: int | None = None  # the running attempt's start

    @property
    def succeeded(self) -> bool:
        """Its latest attempt succeeded (a task no policy started has not)."""
        return bool(self.attempts) and self.attempts[-1].succeeded

    @property
    def wait_ms(self) -> int | None:
        return None if self.started_ms is None else self.started_ms - self.task.arrival_ms


@dataclass(slots=True, kw_only=True)
class Outcome:
    policy: str
    records: list[TaskRecord]
    start_order: list[str]  # task ids in the order they started
    unroutable: list[str]
    first_eta: dict[str, tuple[int, float]] = field(default_factory=dict)  # task id -> (awaited at ms, ETA s)
    budget_waits_ms: dict[str, int] = field(default_factory=dict)  # task id -> ms a spent budget held it


class _Quota:
    """Tokens used per pool in the last hour, as a share of the pool's hourly quota."""

    def __init__(self, fleet: Fleet) -> None:
        self.limits = {(p.model, p.account): p.quota_tokens_per_hour for p in fleet.pools}
        self.recent: dict[tuple[str, str], deque[tuple[int, int]]] = {key: deque() for key in self.limits}
        self.totals = dict.fromkeys(self.limits, 0)

    def add(self, key: tuple[str, str], tokens: int, now_ms: int) -> float | None:
        limit = self.limits[key]
        if limit <= 0:
            return None
        recent = self.recent[key]
        recent.append((now_ms, tokens))
        self.totals[key] += tokens
        while recent and recent[0][0] <= now_ms - HOUR_MS:
            self.totals[key] -= recent.popleft()[1]
        return min(1.0, self.totals[key] / limit)


def simulate(fleet: Fleet, tasks: list[SimTask], policy: Dispatcher, failures: FailureModel | None = None) -> Outcome:
    slots = {s.slot_id: s for s in fleet.slots()}
    # per slot: (its model's tier, its pool's speed), looked up once rather than per start
    runs_on = {s.slot_id: (fleet.catalog.models[s.model].tier, fleet.speed(s.model, s.account)) for s in slots.values()}
    records = {t.task_id: TaskRecord(task=t) for t in tasks}
    quota = _Quota(fleet)
    heap: list[tuple[int, int, int, str]] = []  # (time ms, kind, seq, task id)
    for seq, task in enumerate(tasks):
        heapq.heappush(heap, (task.arrival_ms, _ARRIVE, seq, task.task_id))
    start_ms = tasks[0].arrival_ms if tasks else 0
    policy.begin(0, start_ms)
    for slot in slots.values():
        policy.register(slot, start_ms)
    seq = len(tasks)
    batch = 0
    start_order: list[str] = []
    while heap:
        now = heap[0][0]
        batch += 1
        policy.begin(batch, now)
        while heap and heap[0][0] == now:
            _, kind, _, task_id = heapq.heappop(heap)
            record = records[task_id]
            if kind == _ARRIVE:
                policy.arrive(record.task, now)
            else:
                slot = slots[record.slot_id or ""]
                failure = _finish(record, slot.account, failures)
                policy.free(slot, record.task, now, failure)
                used = quota.add((slot.model, slot.account), record.task.input_tokens + record.task.output_tokens, now)
                if used is not None:
                    policy.quota(slot.model, slot.account, used)
        for task_id, slot_id in policy.match(now):
            record = records[task_id]
            slot = slots[slot_id]
            tier, speed = runs_on[slot_id]
            run_ms = round(record.task.run_s(tier) * speed * 1000)
            if record.started_ms is None:
                record.started_ms = now
            record.slot_id, record.model, record.attempt_started_ms = slot_id, slot.model, now
            record.finished_ms = now + max(1, run_ms)
            start_order.append(task_id)
            seq += 1
            heapq.heappush(heap, (record.finished_ms, _DONE, seq, task_id))
    return Outcome(
        policy=policy.name,
        records=list(records.values()),
        start_order=start_order,
        unroutable=policy.unroutable,
        first_eta=policy.first_eta,
        budget_waits_ms=policy.budget_waits_ms,
    )


def _finish(record: TaskRecord, account: str, failures: FailureModel | None) -> Failure | None:
    """Record the attempt that just ended, with the outcome the failure model draws for it."""
    assert record.model is not None and record.finished_ms is not None
    assert record.attempt_started_ms is not None
    failure = None
    if failures is not None:
        attempt = len(record.attempts) + 1
        failure = failures.draw(
            task_id=record.task.task_id, attempt=attempt, model=record.model, requires=record.task.requires
        )
    record.attempts.append(
        AttemptRecord(
            model=record.model,
            account=account,
            started_ms=record.attempt_started_ms,
            finished_ms=record.finished_ms,
            failure=failure,
        )
    )
    return failure

"""The discrete-event loop: arrivals and completions in time order, one batch per distinct instant.

Events that share a timestamp form one batch, as the worker's batched read would see them; the
policy matches once per batch. A started task runs for its run time on the slot's tier (its base
run time unless the load model makes it depend on the model) x the pool's speed.
"""

from __future__ import annotations

import heapq
from collections import deque
from dataclasses import dataclass, field

from sim.fleet import Fleet
from sim.policies import Dispatcher
from sim.workload import SimTask

HOUR_MS = 3_600_000
_DONE, _ARRIVE = 0, 1  # within an instant, completions are applied before arrivals


@dataclass(slots=True, kw_only=True)
class TaskRecord:
    task: SimTask
    started_ms: int | None = None
    finished_ms: int | None = None
    slot_id: str | None = None
    model: str | None = None

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


def simulate(fleet: Fleet, tasks: list[SimTask], policy: Dispatcher) -> Outcome:
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
                policy.free(slot, record.task, now)
                used = quota.add((slot.model, slot.account), record.task.input_tokens + record.task.output_tokens, now)
                if used is not None:
                    policy.quota(slot.model, slot.account, used)
        for task_id, slot_id in policy.match(now):
            record = records[task_id]
            slot = slots[slot_id]
            tier, speed = runs_on[slot_id]
            run_ms = round(record.task.run_s(tier) * speed * 1000)
            record.started_ms, record.slot_id, record.model = now, slot_id, slot.model
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
    )

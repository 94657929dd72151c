"""The throughput benchmark's workloads: what the driver sends, generated from a seed.

`mixed` (the default) is what a router meets in use: 7 models on 2 accounts, 600 slots, tasks with
varied requirements, EVs, priorities and layers (a few need premium, a few no model can serve), a
standing backlog of about 3,000 waiting tasks, and among the measured events heartbeats,
cancellations of tasks sent earlier and quota updates beside the task.pending and slot.free
(with `completed` usage) that keep the backlog where it is. `uniform` is the easiest workload
there is, kept to compare with earlier figures: 512 haiku slots, identical tasks, and pairs of
task.pending and slot.free, so every task is assigned as its pair is read.

A workload only says what to send. Which task a freed slot reports as `completed` is filled in by
the driver (bench/harness.py) from the assignments it has seen, as a slot knows its own task.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any, Final

# (model, slots): 600 in all, alternating between the two accounts
FLEET: Final = (
    ("haiku", 120),
    ("minimax", 60),
    ("glm", 60),
    ("sonnet", 120),
    ("codex", 80),
    ("opus", 80),
    ("gpt-5", 80),
)
ACCOUNTS: Final = ("acct-a", "acct-b")
# requirement profiles and their weights: most tasks any tier serves, some need tier 2, a few only
# premium, 1% no model (coding 10 and reasoning 10 together)
REQUIRES: Final[tuple[tuple[dict[str, int], int], ...]] = (
    ({}, 25),
    ({"writing": 5}, 15),
    ({"coding": 5}, 19),
    ({"coding": 7}, 15),
    ({"reasoning": 7, "analysis": 7}, 10),
    ({"coding": 9}, 5),
    ({"reasoning": 9, "analysis": 9}, 5),
    ({"safety": 8}, 5),
    ({"coding": 10, "reasoning": 10}, 1),
)
LAYERS: Final = ("strategy", "design", "implementation", "review", "research", "docs", "chore")
# the measured events, per 100: tasks in = tasks assigned + cancelled, so the backlog stays put
MIX: Final = (("task.pending", 40), ("slot.free", 37), ("slot.heartbeat", 15), ("quota.utilisation", 5))
CANCEL_SHARE: Final = 3  # of the 100, task.cancelled of a task sent at least CANCEL_AFTER tasks earlier
CANCEL_AFTER: Final = 500
MIXED: Final = "mixed"
UNIFORM: Final = "uniform"
WORKLOADS: Final = (MIXED, UNIFORM)


@dataclass(slots=True)
class Workload:
    """Slots to register, tasks to send before measuring (to fill the slots and, for `mixed`, the
    backlog), and the measured events, each a JSON-ready dict. A slot.free's `completed` is left
    to the driver: `needs_completed` marks them."""

    name: str
    slots: dict[str, tuple[str, str]]  # slot id -> (model, account)
    seed: int = 1
    backlog: int = 0
    outcomes: bool = False  # slot.free.completed carries `outcome` (PROTOCOL v1.1); off until merged
    _rng: random.Random = field(init=False)
    _task_no: int = field(default=0, init=False)
    _free_cycle: list[str] = field(default_factory=list, init=False)
    _free_at: int = field(default=0, init=False)
    _sent_tasks: list[str] = field(default_factory=list, init=False)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)
        self._free_cycle = sorted(self.slots)
        self._rng.shuffle(self._free_cycle)

    def registrations(self) -> list[dict[str, Any]]:
        return [
            {"type": "slot.free", "slot_id": slot_id, "model": model, "account": account}
            for slot_id, (model, account) in self.slots.items()
        ]

    def warm_up(self) -> list[dict[str, Any]]:
        """One task per slot, then the standing backlog."""
        return [self.task() for _ in range(len(self.slots) + self.backlog)]

    def task(self) -> dict[str, Any]:
        self._task_no += 1
        task_id = f"bt{self._task_no}"
        self._sent_tasks.append(task_id)
        if self.name == UNIFORM:
            return {"type": "task.pending", "task_id": task_id, "priority": 50, "requires": {}, "layer": "chore"}
        rng = self._rng
        requires = rng.choices([r for r, _ in REQUIRES], weights=[w for _, w in REQUIRES])[0]
        doc: dict[str, Any] = {
            "type": "task.pending",
            "task_id": task_id,
            "priority": rng.choice((10, 20, 30, 40, 50, 50, 60, 70, 80, 90, 95)),
            "requires": dict(requires),
            "layer": rng.choice(LAYERS),
            "ev": round(rng.lognormvariate(0.0, 0.8), 3),
            "title": f"benchmark task {task_id}",
        }
        if rng.random() < 0.05:
            doc["quest_priority"] = rng.choice((50, 95, 100))
        if rng.random() < 0.5:
            doc["est_input_tokens"] = rng.randrange(2_000, 80_000)
            doc["est_output_tokens"] = rng.randrange(500, 16_000)
        return doc

    def measured(self, events: int) -> list[dict[str, Any]]:
        """The next `events` measured events."""
        if self.name == UNIFORM:
            out: list[dict[str, Any]] = []
            for _ in range(events // 2):
                out += [self.task(), self._free()]
            return out
        kinds = [k for k, _ in MIX] + ["task.cancelled"]
        weights = [w for _, w in MIX] + [CANCEL_SHARE]
        return [self._event(kind) for kind in self._rng.choices(kinds, weights=weights, k=events)]

    def _event(self, kind: str) -> dict[str, Any]:
        rng = self._rng
        if kind == "task.pending":
            return self.task()
        if kind == "slot.free":
            return self._free()
        if kind == "slot.heartbeat":
            return {"type": "slot.heartbeat", "slot_id": rng.choice(self._free_cycle)}
        if kind == "quota.utilisation":
            model, _ = rng.choice(FLEET)
            return {
                "type": kind,
                "model": model,
                "account": rng.choice(ACCOUNTS),
                "utilisation": round(rng.random(), 2),
            }
        # a task sent a while ago: by now waiting (the usual case) or assigned
        earlier = self._sent_tasks[: max(1, len(self._sent_tasks) - CANCEL_AFTER)]
        return {"type": "task.cancelled", "task_id": rng.choice(earlier)}

    def _free(self) -> dict[str, Any]:
        """The next slot in a fixed shuffled cycle: with 600 slots and at most 256 events a batch,
        a slot is freed again only after its refill had many batches to happen."""
        slot_id = self._free_cycle[self._free_at % len(self._free_cycle)]
        self._free_at += 1
        model, account = self.slots[slot_id]
        return {"type": "slot.free", "slot_id": slot_id, "model": model, "account": account}

    def completed(self, task_id: str) -> dict[str, Any]:
        """The usage a freed slot reports for the task it finished."""
        rng = self._rng
        doc: dict[str, Any] = {
            "task_id": task_id,
            "input_tokens": rng.randrange(1_000, 80_000),
            "output_tokens": rng.randrange(200, 16_000),
            "cost_usd": round(rng.random() * 2, 4),
        }
        if self.outcomes:
            draw = rng.random()
            if draw < 0.9:
                doc["outcome"] = "succeeded"
            else:
                doc["outcome"] = "failed"
                doc["failure"] = "transient" if draw < 0.96 else "capability"
        return doc


def make(name: str, *, seed: int = 1, outcomes: bool = False) -> Workload:
    if name == UNIFORM:
        return Workload(UNIFORM, {f"bench-slot-{i:04d}": ("haiku", "default") for i in range(512)}, seed=seed)
    if name != MIXED:
        raise ValueError(f"unknown workload {name!r}: one of {', '.join(WORKLOADS)}")
    slots: dict[str, tuple[str, str]] = {}
    for model, count in FLEET:
        for i in range(count):
            slots[f"{model}-{i:03d}"] = (model, ACCOUNTS[i % len(ACCOUNTS)])
    return Workload(MIXED, slots, seed=seed, backlog=3_000, outcomes=outcomes)

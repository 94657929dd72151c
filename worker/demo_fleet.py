"""The demo's synthetic outside world: a dispatcher publishing a realistic task mix, and a fleet of
slots across two provider accounts that take assignments, work, report usage, and heartbeat."""

from __future__ import annotations

import math
import random
import threading
import time
from dataclasses import dataclass

import orjson
import redis

from router.catalog import Catalog
from router.errors import ConfigError
from streams.clients import Dispatcher, Slot
from streams.keys import Keys
from worker.signals import StopFlag

# (layer, share, priority range, requires, titles)
TASK_MIX: tuple[tuple[str, float, tuple[int, int], dict[str, int], tuple[str, ...]], ...] = (
    ("chore", 0.30, (5, 40), {}, ("check links in docs/", "fix typo in README", "bump a pinned version")),
    ("docs", 0.15, (20, 55), {"writing": 5}, ("document the retry settings", "write the changelog entry")),
    ("implementation", 0.25, (40, 85), {"coding": 7}, ("add pagination to /tasks", "port the exporter to asyncio")),
    ("review", 0.12, (30, 75), {"coding": 6, "safety": 6}, ("review PR: auth middleware", "review PR: schema change")),
    ("design", 0.10, (60, 92), {"reasoning": 7, "analysis": 7}, ("design the quota throttle", "plan the sharding")),
    ("strategy", 0.08, (80, 100), {"reasoning": 9, "analysis": 8}, ("Q3 architecture bet", "vendor strategy memo")),
)

# The dispatcher is one Python thread; far beyond this it could not keep the pace it was asked for.
MAX_TASKS_PER_S = 1000.0

FLEET: tuple[tuple[str, str, str], ...] = (
    ("acct-a/haiku-1", "haiku", "acct-a"),
    ("acct-a/haiku-2", "haiku", "acct-a"),
    ("acct-b/minimax-1", "minimax", "acct-b"),
    ("acct-b/glm-1", "glm", "acct-b"),
    ("acct-a/sonnet-1", "sonnet", "acct-a"),
    ("acct-b/codex-1", "codex", "acct-b"),
    ("acct-a/opus-1", "opus", "acct-a"),
    ("acct-b/gpt-5-1", "gpt-5", "acct-b"),
)


@dataclass(frozen=True, slots=True, kw_only=True)
class Pace:
    tasks_per_s: float = 6.0
    work_s: tuple[float, float] = (0.5, 3.0)
    heartbeat_s: float = 5.0
    bad_input_share: float = 0.01  # a few malformed entries show dead-lettering at work

    def __post_init__(self) -> None:
        # The dispatcher waits expovariate(tasks_per_s) between tasks: 0 divides by zero in its
        # thread, and a negative, infinite or NaN rate publishes without any pause.
        if not (math.isfinite(self.tasks_per_s) and 0 < self.tasks_per_s <= MAX_TASKS_PER_S):
            raise ConfigError(
                f"tasks_per_s must be more than 0 and at most {MAX_TASKS_PER_S:g}, got {self.tasks_per_s}"
            )


class SyntheticDispatcher(threading.Thread):
    def __init__(self, r: redis.Redis, keys: Keys, *, stop: StopFlag, pace: Pace, seed: int = 7) -> None:
        super().__init__(name="demo-dispatcher", daemon=True)
        self.client = Dispatcher(r, keys)
        self.r = r
        self.keys = keys
        self.stop = stop
        self.pace = pace
        self.rand = random.Random(seed)
        self.published = 0

    def run(self) -> None:
        while not self.stop.stopping:
            self.publish_one()
            self.stop.wait(self.rand.expovariate(self.pace.tasks_per_s))

    def publish_one(self) -> None:
        self.published += 1
        if self.published % 20 == 1:
            self.report_quota()
        if self.rand.random() < self.pace.bad_input_share:
            self.r.xadd(self.keys.events, {"data": b'{"type": "task.pending", "task_id": 42}'})
            return
        layer, _, (low, high), requires, titles = self.rand.choices(TASK_MIX, weights=[m[1] for m in TASK_MIX])[0]
        priority = self.rand.randint(low, high)
        quest = 96 if layer == "strategy" and self.rand.random() < 0.3 else None
        self.client.publish_task(
            f"T{self.published:05d}",
            priority=priority,
            requires=requires,
            layer=layer,
            title=self.rand.choice(titles),
            quest_priority=quest,
            est_input_tokens=self.rand.randint(5_000, 60_000),
            est_output_tokens=self.rand.randint(500, 8_000),
            submitted_at=int(time.time() * 1000),
        )

    def report_quota(self) -> None:
        """What a quota throttle would send: each (account, model)'s share of its quota used."""
        for _, model, account in FLEET:
            doc = {
                "type": "quota.utilisation",
                "model": model,
                "account": account,
                "utilisation": round(self.rand.uniform(0.05, 0.95), 2),
            }
            self.r.xadd(self.keys.events, {"data": orjson.dumps(doc)})


class SyntheticSlot(threading.Thread):
    def __init__(
        self,
        r: redis.Redis,
        keys: Keys,
        catalog: Catalog,
        *,
        slot_id: str,
        model: str,
        account: str,
        stop: StopFlag,
        pace: Pace,
        seed: int,
    ) -> None:
        super().__init__(name=f"demo-slot-{slot_id}", daemon=True)
        self.slot = Slot(r, slot_id=slot_id, model=model, account=account, keys=keys)
        self.model = catalog.models[model]
        self.stop = stop
        self.pace = pace
        self.rand = random.Random(seed)
        self.completed = 0

    def run(self) -> None:
        self.slot.free()
        last_beat = time.monotonic()
        while not self.stop.stopping:
            assignment = self.slot.next_assignment(block_ms=500)
            if time.monotonic() - last_beat > self.pace.heartbeat_s:
                self.slot.heartbeat()
                last_beat = time.monotonic()
            if assignment is not None:
                self.work(assignment)
                last_beat = time.monotonic()

    def work(self, assignment: dict[str, object]) -> None:
        task_id = str(assignment["task_id"])
        self.slot.started(task_id)
        if self.stop.wait(self.rand.uniform(*self.pace.work_s)):
            return
        task = assignment.get("task") or {}
        est_in = task.get("est_input_tokens", 10_000) if isinstance(task, dict) else 10_000
        est_out = task.get("est_output_tokens", 2_000) if isinstance(task, dict) else 2_000
        tokens_in = int(int(est_in) * self.rand.uniform(0.6, 1.4))
        tokens_out = int(int(est_out) * self.rand.uniform(0.6, 1.4))
        cost = self.model.cost_usd(input_tokens=tokens_in, output_tokens=tokens_out)
        self.completed += 1
        self.slot.free(
            completed={
                "task_id": task_id,
                "input_tokens": tokens_in,
                "output_tokens": tokens_out,
                "cost_usd": round(cost, 6),
            }
        )


def start_fleet(
    clients: list[redis.Redis], *, keys: Keys, catalog: Catalog, stop: StopFlag, pace: Pace
) -> list[SyntheticSlot]:
    """One thread per slot of FLEET, each with its own connection (each blocks on its own stream)."""
    slots = []
    for index, ((slot_id, model, account), client) in enumerate(zip(FLEET, clients, strict=True)):
        slot = SyntheticSlot(
            client, keys, catalog, slot_id=slot_id, model=model, account=account, stop=stop, pace=pace, seed=100 + index
        )
        slot.start()
        slots.append(slot)
    return slots

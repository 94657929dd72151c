"""The indexed matching round against a naive reference written from POLICY.md alone.

The reference keeps the same state as plain dicts and, in each round, walks every waiting task in
order (override desc, priority desc, EV desc, arrival asc) deciding each against the slots still
free. Assignments that lapse (slot.gone before task.started, or a silent slot past the assignment
timeout) put the task back in its old place. Both must give the same assignments, await
announcements, lapses, unroutable decisions and cancellations for any sequence of event batches.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import event as note_event
from hypothesis import strategies as st
from support.router_harness import T0, RouterHarness

from router.catalog import Catalog, load_catalog
from router.engine import Cancelled
from router.service_rates import SCALE_DRIFT, SERVICE_WEIGHT
from router.values import (
    Decision,
    Event,
    Outcome,
    QuotaUtilisation,
    ReasonCode,
    SlotFree,
    SlotGone,
    SlotHeartbeat,
    Task,
    TaskCancelled,
    TaskPending,
    TaskStarted,
)

CATALOG = load_catalog()
STALE_MS = 90_000
ASSIGNMENT_TIMEOUT_MS = 60_000

REQUIRES = [
    {},
    {"reasoning": 5},
    {"reasoning": 7},
    {"writing": 8},
    {"coding": 10},  # opus only
    {"reasoning": 10},  # gpt-5 only
    {"coding": 9, "reasoning": 9},  # opus and gpt-5
    {"telepathy": 1},  # unroutable
]


# -- the naive reference ------------------------------------------------------------------------


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    s = sorted(values)
    pos = q * (len(s) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


@dataclass
class _Waiting:
    task: Task
    ev: float
    seq: int
    since: int
    announced: bool = False
    scale: float | None = None  # the mean service time of its models when it started waiting
    rank: float = 0.5  # its EV's rank in the window when filed


@dataclass
class _Slot:
    model: str
    account: str
    state: str
    last_heard: int
    since: int = 0
    task_id: str | None = None
    held: _Waiting | None = None  # the task as it waited, until the slot reports it started


@dataclass
class Naive:
    catalog: Catalog
    window: int
    sole_tier_first: bool = False
    points_per_scale: float = 0.0
    ev_points: float = 0.0
    means: dict[str, float] = field(default_factory=dict)  # model -> mean service time, first measured first
    scales: dict[frozenset[str], float] = field(default_factory=dict)  # the scale each model set waits by
    slots: dict[str, _Slot] = field(default_factory=dict)
    waiting: dict[str, _Waiting] = field(default_factory=dict)
    assigned: set[str] = field(default_factory=set)
    evs: list[float] = field(default_factory=list)
    util: dict[tuple[str, str], float] = field(default_factory=dict)
    seq: int = 0
    cancelled_held: set[str] = field(default_factory=set)  # cancelled while assigned, not started

    def rateable(self, requires: dict[str, int]) -> list[str]:
        return [
            mid
            for mid, m in self.catalog.models.items()
            if all(m.capabilities.get(name, 0) >= level for name, level in requires.items())
        ]

    def ev_rank(self, ev: float) -> float:
        if not self.evs:
            return 0.5
        below = sum(1 for v in self.evs if v < ev)
        not_above = sum(1 for v in self.evs if v <= ev)
        return (below + not_above) / (2 * len(self.evs))

    def scale_for(self, requires: dict[str, int]) -> float | None:
        """Mean service time of the models that may serve it, else of every measured model; one
        scale per set of models, replaced (and given to that set's waiting tasks) only once the
        mean drifts past SCALE_DRIFT."""
        rateable = frozenset(self.rateable(requires))
        measured = self._mean_of(rateable)
        if measured is None:
            measured = self._mean_of(frozenset(self.means))
        if measured is None:
            return None
        held = self.scales.get(rateable)
        if held is not None and held / SCALE_DRIFT <= measured <= held * SCALE_DRIFT:
            return held
        self.scales[rateable] = measured
        if held is not None:
            for w in self.waiting.values():
                if w.scale is not None and frozenset(self.rateable(dict(w.task.requires))) == rateable:
                    w.scale = measured
        return measured

    def _mean_of(self, wanted: frozenset[str]) -> float | None:
        measured = [mean for model, mean in self.means.items() if model in wanted]
        if not measured:
            return None
        total = 0.0
        for mean in measured:
            total += mean
        return total / len(measured)

    def measure(self, model: str, service_ms: int) -> None:
        first = not self.means
        old = self.means.get(model)
        self.means[model] = float(service_ms) if old is None else old + SERVICE_WEIGHT * (service_ms - old)
        if first:  # the first measurement gives every waiting task a time scale
            for w in self.waiting.values():
                if w.scale is None:
                    w.scale = self.scale_for(dict(w.task.requires))

    def apply(self, event: Event, now: int, out: dict[str, list[Any]]) -> None:
        if isinstance(event, TaskPending):
            t = event.task
            if t.task_id in self.assigned:
                return
            ev = t.ev if t.ev is not None else t.priority / 100
            known = self.waiting.get(t.task_id)
            if known is None:
                self.evs = [*self.evs, ev][-self.window :]
            if not self.rateable(dict(t.requires)):
                self.waiting.pop(t.task_id, None)
                out["unroutable"].append(t.task_id)
                return
            rank = self.ev_rank(ev) if self.ev_points > 0 else 0.5
            if known is None:
                self.seq += 1
                scale = self.scale_for(dict(t.requires))
                self.waiting[t.task_id] = _Waiting(t, ev, self.seq, now, scale=scale, rank=rank)
            else:
                known.task, known.ev, known.rank = t, ev, rank
        elif isinstance(event, TaskCancelled):
            if self.waiting.pop(event.task_id, None) is not None:
                out["cancelled"].append(event.task_id)
            elif any(s.held is not None and s.held.task.task_id == event.task_id for s in self.slots.values()):
                self.cancelled_held.add(event.task_id)
        elif isinstance(event, SlotFree):
            before = self.slots.get(event.slot_id)
            if before is not None and before.state == "busy" and before.task_id is not None:
                self.measure(before.model, now - before.since)
            self.slots[event.slot_id] = _Slot(event.model, event.account, "free", now, since=now)
        elif isinstance(event, SlotHeartbeat):
            s = self.slots.get(event.slot_id)
            if s is not None and s.state != "gone":
                s.last_heard = max(s.last_heard, now)
        elif isinstance(event, TaskStarted):
            s = self.slots.get(event.slot_id)
            if s is not None and s.state == "busy" and s.task_id == event.task_id:
                s.held = None
                s.last_heard = max(s.last_heard, now)
        elif isinstance(event, SlotGone):
            if event.slot_id in self.slots:
                self.gone(event.slot_id, now, out)
        elif isinstance(event, QuotaUtilisation):
            self.util[(event.account, event.model)] = event.utilisation

    def gone(self, slot_id: str, now: int, out: dict[str, list[Any]]) -> None:
        s = self.slots[slot_id]
        held, s.held, s.state, s.since, s.task_id = s.held, None, "gone", now, None
        if held is not None and held.task.task_id in self.cancelled_held:  # dropped, not requeued
            self.cancelled_held.discard(held.task.task_id)
            self.assigned.discard(held.task.task_id)
            out["cancelled"].append(held.task.task_id)
        elif held is not None:  # assigned but never started: the task waits again, in its old place
            self.assigned.discard(held.task.task_id)
            scale = held.scale if held.scale is not None else self.scale_for(dict(held.task.requires))
            self.waiting[held.task.task_id] = _Waiting(
                held.task, held.ev, held.seq, held.since, announced=True, scale=scale, rank=held.rank
            )
            out["lapsed"].append(held.task.task_id)

    def expire(self, now: int, out: dict[str, list[Any]]) -> None:
        for slot_id in sorted(self.slots):
            s = self.slots[slot_id]
            if s.held is not None and now - s.since > ASSIGNMENT_TIMEOUT_MS and now - s.last_heard > STALE_MS:
                self.gone(slot_id, now, out)

    def match(self, now: int, out: dict[str, list[Any]]) -> None:
        """Repeatedly place the first task in matching order that a still-free slot may serve.

        The order is override, priority, EV, arrival; refined, when configured, by a task that only
        one tier can serve going first, by EV adding ev_points per unit to a non-override task's
        priority, and by waiting time adding priority points."""
        p50, p90 = _percentile(self.evs, 0.5), _percentile(self.evs, 0.9)

        def override(w: _Waiting) -> bool:
            q = w.task.quest_priority
            return (p90 is not None and w.ev > p90) or (q is not None and q >= 95)

        def order_key(w: _Waiting) -> tuple[Any, ...]:
            rateable = self.rateable(dict(w.task.requires))
            sole = len({self.catalog.models[m].tier for m in rateable}) == 1
            priority: float = w.task.priority
            if (self.points_per_scale > 0 or self.ev_points > 0) and not override(w):
                # score + points for the time scales waited, less a shift common to every task: the
                # instant the score was 0, with the same float operations as the index so that ties
                # break the same way
                score = w.task.priority + self.ev_points * w.rank
                if self.points_per_scale > 0 and w.scale is not None:
                    priority = -(w.since - w.scale * score / self.points_per_scale)
                else:
                    priority = score
            return (self.sole_tier_first and sole, override(w), priority, w.ev, -w.seq)

        def best_slot(w: _Waiting) -> str | None:
            rateable = self.rateable(dict(w.task.requires))
            min_tier = min(self.catalog.models[m].tier for m in rateable)
            blocked = p50 is not None and min_tier < 3 and w.ev < p50 and w.task.priority < 90
            candidates = []
            for slot_id, s in self.slots.items():
                model = self.catalog.models[s.model]
                if s.state != "free" or now - s.last_heard > STALE_MS or s.model not in rateable:
                    continue
                if model.tier == 3 and blocked:
                    continue
                tier_key = -model.tier if override(w) else model.tier
                candidates.append((tier_key, self.util.get((s.account, s.model), 0.0), slot_id))
            return min(candidates)[2] if candidates else None

        while True:
            placeable = [(order_key(w), w, slot) for w in self.waiting.values() if (slot := best_slot(w)) is not None]
            if not placeable:
                break
            _, w, slot_id = max(placeable, key=lambda x: x[0])
            slot = self.slots[slot_id]
            slot.state, slot.since, slot.task_id, slot.held = "busy", now, w.task.task_id, w
            del self.waiting[w.task.task_id]
            self.assigned.add(w.task.task_id)
            out["assigned"].append((w.task.task_id, slot_id))
        for w in self.waiting.values():
            if not w.announced:
                w.announced = True
                out["await"].append(w.task.task_id)


# -- event generation ---------------------------------------------------------------------------

TASK_IDS = [f"t{i}" for i in range(10)]
SLOT_IDS = ["a1", "a2", "b1", "b2", "c1", "c2", "d1", "z9"]


@st.composite
def task_pending(draw: st.DrawFn) -> Event:
    task_id = draw(st.sampled_from(TASK_IDS))
    priority = draw(st.sampled_from([0, 10, 45, 50, 89, 90, 95, 100]))  # 45 / 50: close enough for EV points to reorder
    requires = draw(st.sampled_from(REQUIRES))
    ev = draw(st.sampled_from([None, None, 0.0, 0.2, 0.5, 0.55, 0.9, 1.0, 2.5]))
    quest = draw(st.sampled_from([None, None, 10, 94, 95, 100]))
    t = Task(task_id=task_id, priority=priority, requires=requires, ev=ev, quest_priority=quest)
    return TaskPending(task=t)


EVENTS = st.one_of(
    task_pending(),
    task_pending(),
    task_pending(),
    st.builds(
        SlotFree,
        slot_id=st.sampled_from(SLOT_IDS),
        model=st.sampled_from(sorted(CATALOG.models)),
        account=st.sampled_from(["acct-a", "acct-b"]),
    ),
    st.builds(
        SlotFree,
        slot_id=st.sampled_from(SLOT_IDS),
        model=st.sampled_from(["haiku", "sonnet", "opus"]),
        account=st.just("acct-a"),
    ),
    st.builds(SlotHeartbeat, slot_id=st.sampled_from(SLOT_IDS)),
    st.builds(SlotGone, slot_id=st.sampled_from(SLOT_IDS)),
    st.builds(TaskStarted, task_id=st.sampled_from(TASK_IDS), slot_id=st.sampled_from(SLOT_IDS)),
    st.builds(TaskCancelled, task_id=st.sampled_from(TASK_IDS)),
    st.builds(
        QuotaUtilisation,
        model=st.sampled_from(sorted(CATALOG.models)),
        account=st.sampled_from(["acct-a", "acct-b"]),
        utilisation=st.sampled_from([0.0, 0.3, 0.3, 1.0]),
    ),
)

BATCHES = st.lists(
    st.tuples(st.sampled_from([0, 1_000, 60_000, 95_000]), st.lists(EVENTS, min_size=1, max_size=8)),
    min_size=1,
    max_size=12,
)


def _outcomes() -> dict[str, list[Any]]:
    return {"assigned": [], "await": [], "unroutable": [], "cancelled": [], "lapsed": []}


def _run_router(h: RouterHarness, events: list[Event], now: int) -> dict[str, list[Any]]:
    out = _outcomes()
    for e in h.batch(*events, now_ms=now):
        if isinstance(e, Cancelled):
            out["cancelled"].append(e.task_id)
        elif isinstance(e, Decision):
            if e.outcome is Outcome.ASSIGNED:
                assert e.chosen is not None
                out["assigned"].append((e.task.task_id, e.chosen.slot_id))
            elif e.reason_code is ReasonCode.ASSIGNMENT_LAPSED:
                out["lapsed"].append(e.task.task_id)
            elif e.outcome is Outcome.AWAIT_SLOT:
                out["await"].append(e.task.task_id)
            else:
                out["unroutable"].append(e.task.task_id)
    return out


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    batches=BATCHES,
    window=st.sampled_from([3, 7, 1000]),
    sole_tier_first=st.booleans(),
    ageing=st.sampled_from([0.0, 0.0, 30.0]),
    ev_points=st.sampled_from([0.0, 0.0, 50.0, 100.0]),
)
def test_indexed_matching_round_equals_the_naive_reference(
    batches: list[tuple[int, list[Event]]], window: int, sole_tier_first: bool, ageing: float, ev_points: float
) -> None:
    h = RouterHarness(
        CATALOG,
        stale_after_s=STALE_MS / 1000,
        assignment_timeout_s=ASSIGNMENT_TIMEOUT_MS / 1000,
        ev_window=window,
        sole_tier_first=sole_tier_first,
        ageing_points_per_service_time=ageing,
        ev_rank_points=ev_points,
    )
    naive = Naive(CATALOG, window, sole_tier_first=sole_tier_first, points_per_scale=ageing, ev_points=ev_points)
    now = T0
    for n, (advance, events) in enumerate(batches, start=1):
        now += advance
        got = _run_router(h, events, now)
        expected = _outcomes()
        for event in events:
            naive.apply(event, now, expected)
        naive.expire(now, expected)
        naive.match(now, expected)
        assert got["assigned"] == expected["assigned"], f"batch {n}"
        assert sorted(got["await"]) == sorted(expected["await"]), f"batch {n}"
        assert got["unroutable"] == expected["unroutable"], f"batch {n}"
        assert got["cancelled"] == expected["cancelled"], f"batch {n}"
        assert got["lapsed"] == expected["lapsed"], f"batch {n}"
        assert sorted(h.router.waiting.tasks) == sorted(naive.waiting), f"batch {n}"
        for kind, items in got.items():
            if items:
                note_event(f"some batch had {kind}")

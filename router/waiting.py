"""Tasks awaiting a slot, indexed so that a matching round never scans every waiting task.

Tasks are grouped by the set of models that can serve them (few distinct sets exist for a
catalogue of a handful of models). Inside a group, tasks sit in buckets by priority, each bucket
sorted by EV (highest first) then arrival. Both rules that depend on the moving EV percentiles
(override: EV > P90; premium block: EV < P50) then pick a prefix of a bucket, so the first task
in matching order that may use a given set of free models is found in O(priority levels), not
O(waiting tasks).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from sortedcontainers import SortedDict, SortedList

from router.catalog import PREMIUM_TIER
from router.policy import OVERRIDE_QUEST_PRIORITY, PREMIUM_BLOCK_PRIORITY
from router.values import Task

Entry = tuple[float, int, str]  # (-ev, arrival seq, task_id): ascending order = best first
_Allowed = Callable[[int, float], bool]  # may a task of this priority and EV use the free models?


@dataclass(slots=True, kw_only=True)
class WaitingTask:
    task: Task
    ev: float
    seq: int
    since_ms: int
    models: frozenset[str]
    min_tier: int
    await_decision_id: str | None = None

    @property
    def entry(self) -> Entry:
        return (-self.ev, self.seq, self.task.task_id)

    @property
    def is_quest_override(self) -> bool:
        q = self.task.quest_priority
        return q is not None and q >= OVERRIDE_QUEST_PRIORITY


@dataclass(frozen=True, slots=True, order=True)
class Rank:
    """Matching order, larger first: override, then priority, then EV, then earlier arrival."""

    override: bool
    priority: int
    ev: float
    neg_seq: int


@dataclass(slots=True)
class _Group:
    models: frozenset[str]
    min_tier: int
    quest: SortedDict = field(default_factory=SortedDict)  # priority -> SortedList[Entry]
    normal: SortedDict = field(default_factory=SortedDict)  # priority -> SortedList[Entry]
    normal_by_ev: SortedList = field(default_factory=SortedList)  # every normal Entry
    size: int = 0

    def add(self, w: WaitingTask) -> None:
        buckets = self.quest if w.is_quest_override else self.normal
        buckets.setdefault(w.task.priority, SortedList()).add(w.entry)
        if not w.is_quest_override:
            self.normal_by_ev.add(w.entry)
        self.size += 1

    def remove(self, w: WaitingTask) -> None:
        buckets = self.quest if w.is_quest_override else self.normal
        bucket = buckets[w.task.priority]
        bucket.remove(w.entry)
        if not bucket:
            del buckets[w.task.priority]
        if not w.is_quest_override:
            self.normal_by_ev.remove(w.entry)
        self.size -= 1

    def first(self, *, p50: float | None, p90: float | None, premium_only: bool) -> tuple[Rank, str] | None:
        """The first task in matching order that may use the free models (premium only or not)."""
        premium_rule = premium_only and self.min_tier < PREMIUM_TIER

        def allowed(priority: int, ev: float) -> bool:
            return not premium_rule or priority >= PREMIUM_BLOCK_PRIORITY or p50 is None or ev >= p50

        found = self._first_override(p90, allowed)
        return found if found is not None else self._first_normal(p90, allowed)

    def _first_override(self, p90: float | None, allowed: _Allowed) -> tuple[Rank, str] | None:
        ev_overrides = p90 is not None and bool(self.normal_by_ev) and -self.normal_by_ev[0][0] > p90
        if not self.quest and not ev_overrides:
            return None
        levels = sorted(set(self.quest.keys()) | (set(self.normal.keys()) if ev_overrides else set()), reverse=True)
        for priority in levels:
            best: Entry | None = None
            quest = self.quest.get(priority)
            if quest and allowed(priority, -quest[0][0]):
                best = quest[0]
            normal = self.normal.get(priority)
            if ev_overrides and normal and p90 is not None and -normal[0][0] > p90:
                # EV above P90 is above P50 too, so the premium rule never refuses it
                best = normal[0] if best is None else min(best, normal[0])
            if best is not None:
                return Rank(True, priority, -best[0], -best[1]), best[2]
        return None

    def _first_normal(self, p90: float | None, allowed: _Allowed) -> tuple[Rank, str] | None:
        for priority in reversed(self.normal.keys()):
            bucket = self.normal[priority]
            index = 0 if p90 is None else bucket.bisect_left((-p90,))  # first entry with EV <= P90
            if index < len(bucket):
                entry = bucket[index]
                if allowed(priority, -entry[0]):
                    return Rank(False, priority, -entry[0], -entry[1]), entry[2]
        return None


class WaitingIndex:
    def __init__(self) -> None:
        self.tasks: dict[str, WaitingTask] = {}
        self._groups: dict[frozenset[str], _Group] = {}
        self._next_seq = 0

    def __len__(self) -> int:
        return len(self.tasks)

    def __contains__(self, task_id: object) -> bool:
        return task_id in self.tasks

    def next_seq(self) -> int:
        self._next_seq += 1
        return self._next_seq

    def add(self, w: WaitingTask) -> None:
        if w.task.task_id in self.tasks:
            self.remove(w.task.task_id)
        self._next_seq = max(self._next_seq, w.seq)
        self.tasks[w.task.task_id] = w
        group = self._groups.get(w.models)
        if group is None:
            group = self._groups[w.models] = _Group(models=w.models, min_tier=w.min_tier)
        group.add(w)

    def remove(self, task_id: str) -> WaitingTask | None:
        w = self.tasks.pop(task_id, None)
        if w is not None:
            group = self._groups[w.models]
            group.remove(w)
            if group.size == 0:
                del self._groups[w.models]
        return w

    def best_placeable(
        self, *, free_models: set[str], premium_models: frozenset[str], p50: float | None, p90: float | None
    ) -> WaitingTask | None:
        """The first waiting task, in matching order, that some free model may serve."""
        best: tuple[Rank, str] | None = None
        for models, group in self._groups.items():
            usable = models & free_models
            if not usable:
                continue
            found = group.first(p50=p50, p90=p90, premium_only=usable <= premium_models)
            if found is not None and (best is None or found[0] > best[0]):
                best = found
        return None if best is None else self.tasks[best[1]]

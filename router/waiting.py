"""Tasks awaiting a slot, indexed so that a matching round never scans every waiting task.

Tasks are grouped by the set of models that can serve them (few distinct sets exist for a
catalogue of a handful of models). Inside a group, tasks sit in buckets by priority, each bucket
sorted by EV (highest first) then arrival. Both rules that depend on the moving EV percentiles
(router/policy.py's is_ev_override and premium_allowed: thresholds on EV, asked here, never
re-stated) then pick a prefix of a bucket, so the first task in matching order that may use a
given set of free models is found in O(priority levels), not O(waiting tasks).

When the non-override order is scored (ageing, or EV points, or both; the default), a non-override
task's place is its score, priority + EV rank x ev_points, plus K points for each time scale it has
waited (its models' mean service time, fixed when it started waiting; see `order_key`). The waiting
term grows at a fixed rate per task, so `since - scale x score / K` orders the tasks the same at
every instant and one sorted list per group holds the scored order. The thresholds that
move with the EV window are kept as subsets: the tasks above P90 (EV overrides, in override order)
and those premium may serve under P50, each brought up to date only when asked, by moving the
tasks whose EV lies between the old and the new threshold; there are no priority buckets then,
except for quest overrides.
"""

from __future__ import annotations

from bisect import insort
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from itertools import islice
from typing import Final

from router.catalog import PREMIUM_TIER
from router.policy import is_ev_override, is_quest_override, premium_allowed
from router.sortedseq import SortedSeq
from router.values import Task

Entry = tuple[float, int, str]  # (-ev, arrival seq, task_id): ascending order = best first
# (order key: since_ms - scale_ms x score / K, or -score with no ageing, -ev, seq, task_id, priority):
# ascending order = best first in the scored order
AgedEntry = tuple[float, float, int, str, int]
# (-priority, -ev, arrival seq, task_id): ascending order = the override order among EV overrides
HotEntry = tuple[int, float, int, str]
PREMIUM_LOOKAHEAD: Final = 32  # aged entries checked one by one before the premium list is consulted
_AFTER_EVERY_SEQ: Final = 2**63  # sorts after any arrival seq, for bisecting on EV alone
_Allowed = Callable[[int, float], bool]  # may a task of this priority and EV use the free models?


@dataclass(slots=True, kw_only=True, init=False)
class WaitingTask:
    """(Built for every task: its `__init__` is written out so that mypyc compiles it; see
    router/values.py.)"""

    task: Task
    ev: float
    seq: int
    since_ms: int
    models: frozenset[str]
    min_tier: int
    await_decision_id: str | None = None
    # the matching order's time scale for this task, fixed when it started waiting (None: nothing
    # measured yet); see order_key
    scale_ms: float | None = None
    # where its EV stood in the EV window when it was filed, 0 (lowest) to 1 (highest)
    ev_rank: float = 0.5
    # the uncorrected ETA given at its first await, and one slot turn of its models then (the time
    # between two of their slots freeing up): what the ETA correction learns from
    first_estimate_s: float | None = None
    first_turn_s: float | None = None

    def __init__(
        self,
        *,
        task: Task,
        ev: float,
        seq: int,
        since_ms: int,
        models: frozenset[str],
        min_tier: int,
        await_decision_id: str | None = None,
        scale_ms: float | None = None,
        ev_rank: float = 0.5,
        first_estimate_s: float | None = None,
        first_turn_s: float | None = None,
    ) -> None:
        self.task = task
        self.ev = ev
        self.seq = seq
        self.since_ms = since_ms
        self.models = models
        self.min_tier = min_tier
        self.await_decision_id = await_decision_id
        self.scale_ms = scale_ms
        self.ev_rank = ev_rank
        self.first_estimate_s = first_estimate_s
        self.first_turn_s = first_turn_s

    @property
    def entry(self) -> Entry:
        return (-self.ev, self.seq, self.task.task_id)

    @property
    def is_quest_override(self) -> bool:
        return is_quest_override(self.task.quest_priority)


# Matching order, larger first: (override, priority, EV, -arrival seq). For a non-override task the
# priority is its score (priority plus EV points plus ageing, when those are on). A plain tuple: a
# matching round builds and compares these for every group, and tuples compare in C.
Rank = tuple[bool, float, float, int]
# (goes first as the only tier that can serve it, Rank): a task's whole place in matching order
Standing = tuple[bool, Rank]


class _Buckets:
    """Entries by priority, each bucket sorted (best first), with each bucket's first entry and the
    priorities in descending order kept at hand: a matching round reads those for every level, so
    they are plain dict and list reads rather than sorted-list lookups."""

    __slots__ = ("by_priority", "heads", "levels")

    def __init__(self) -> None:
        self.by_priority: dict[int, SortedSeq[Entry]] = {}
        self.heads: dict[int, Entry] = {}
        self.levels: list[int] = []  # descending

    def __bool__(self) -> bool:
        return bool(self.levels)

    def add(self, priority: int, entry: Entry) -> None:
        bucket = self.by_priority.get(priority)
        if bucket is None:
            bucket = self.by_priority[priority] = SortedSeq()
            insort(self.levels, priority, key=_negated)
        bucket.add(entry)
        head = self.heads.get(priority)
        if head is None or entry < head:
            self.heads[priority] = entry

    def remove(self, priority: int, entry: Entry) -> None:
        bucket = self.by_priority[priority]
        bucket.remove(entry)
        if not bucket:
            del self.by_priority[priority], self.heads[priority]
            self.levels.remove(priority)
        elif self.heads[priority] == entry:
            self.heads[priority] = bucket[0]


def _negated(priority: int) -> int:
    return -priority


@dataclass(slots=True)
class Group:
    """The waiting tasks that the same set of models may serve, in the orders a matching round
    and a queue position read."""

    models: frozenset[str]
    min_tier: int
    # every model that can serve these tasks is of one tier: a slot of that tier is their only way out
    sole_tier: bool = False
    # ageing: waiting one time scale counts as this many priority points (0: off); see order_key
    points_per_scale: float = 0.0
    # going from the lowest EV of the window to the highest counts as this many priority points
    ev_points: float = 0.0
    normal_aged: SortedSeq[AgedEntry] = field(default_factory=SortedSeq)  # every normal AgedEntry, if scored
    # When scored: the normal entries a premium slot may serve under `premium_p50` (policy's
    # premium_allowed), in aged order. P50 drifts a little per task, so moving the threshold moves only the
    # entries whose EV lies between the old and the new value (found by bisection in normal_by_ev).
    # None until first asked for (a fleet or a group that never has only premium slots free never
    # asks): then built from normal_aged and kept in step from then on.
    premium_aged: SortedSeq[AgedEntry] | None = None
    premium_p50: float | None = None
    aged_of: dict[str, AgedEntry] = field(default_factory=dict)
    # When scored: the normal entries with EV above `hot_p90` (the EV overrides under that P90), in
    # override order; kept in step with P90 the way premium_aged is with P50. Unscored, the normal
    # buckets answer the same question level by level.
    hot: SortedSeq[HotEntry] = field(default_factory=SortedSeq)
    hot_p90: float | None = None
    quest: _Buckets = field(default_factory=_Buckets)
    normal: _Buckets = field(default_factory=_Buckets)  # unscored only
    normal_by_ev: SortedSeq[Entry] = field(default_factory=SortedSeq)  # every normal Entry
    size: int = 0

    def add(self, w: WaitingTask) -> None:
        self.size += 1
        if w.is_quest_override:
            self.quest.add(w.task.priority, w.entry)
            return
        self.normal_by_ev.add(w.entry)
        if not self.scored:
            self.normal.add(w.task.priority, w.entry)
            return
        aged = self.aged_entry(w)
        self.normal_aged.add(aged)
        self.aged_of[w.task.task_id] = aged
        if self.premium_aged is not None and _premium_may(aged, self.premium_p50):
            self.premium_aged.add(aged)
        if is_ev_override(w.ev, self.hot_p90):
            self.hot.add(_hot(aged))

    def remove(self, w: WaitingTask) -> None:
        self.size -= 1
        if w.is_quest_override:
            self.quest.remove(w.task.priority, w.entry)
            return
        self.normal_by_ev.remove(w.entry)
        if not self.scored:
            self.normal.remove(w.task.priority, w.entry)
            return
        aged = self.aged_of.pop(w.task.task_id)
        self.normal_aged.remove(aged)
        if self.premium_aged is not None and _premium_may(aged, self.premium_p50):
            self.premium_aged.remove(aged)
        if is_ev_override(w.ev, self.hot_p90):
            self.hot.remove(_hot(aged))

    @property
    def scored(self) -> bool:
        """The non-override order is a score (ageing or EV points on): kept in normal_aged."""
        return self.points_per_scale > 0 or self.ev_points > 0

    def _sync_premium(self, p50: float | None) -> SortedSeq[AgedEntry]:
        """premium_aged, made to hold exactly the entries premium may serve under `p50`."""
        if self.premium_aged is None:
            self.premium_aged = SortedSeq(aged for aged in self.normal_aged if _premium_may(aged, p50))
            self.premium_p50 = p50
            return self.premium_aged
        premium_aged, old = self.premium_aged, self.premium_p50
        if p50 == old:
            return premium_aged
        # the rule is a threshold on EV: only entries with EV between the two P50s can change answer
        # (with no P50 on one side, every EV below the other)
        low = min(old, p50) if old is not None and p50 is not None else float("-inf")
        high = max(b for b in (old, p50) if b is not None)
        for aged in self._between(low, high):
            now_allowed = _premium_may(aged, p50)
            if now_allowed == _premium_may(aged, old):
                continue
            if now_allowed:
                premium_aged.add(aged)
            else:
                premium_aged.remove(aged)
        self.premium_p50 = p50
        return premium_aged

    def _between(self, low: float, high: float) -> list[AgedEntry]:
        """The normal entries with low <= EV <= high (low may be -inf, high +inf)."""
        first = None if high == float("inf") else (-high, -1, "")
        last = None if low == float("-inf") else (-low, _AFTER_EVERY_SEQ, "")
        return [self.aged_of[task_id] for _, _, task_id in self.normal_by_ev.irange(first, last)]

    def sync_hot(self, p90: float) -> None:
        """Make `hot` hold exactly the normal entries that are EV overrides under `p90`."""
        old = self.hot_p90
        if p90 == old:
            return
        # as for the premium list: only entries with EV between the two P90s can change answer
        low = p90 if old is None else min(old, p90)
        high = float("inf") if old is None else max(old, p90)
        for aged in self._between(low, high):
            now_hot = is_ev_override(-aged[1], p90)
            if now_hot == is_ev_override(-aged[1], old):
                continue
            if now_hot:
                self.hot.add(_hot(aged))
            else:
                self.hot.remove(_hot(aged))
        self.hot_p90 = p90

    def aged_entry(self, w: WaitingTask) -> AgedEntry:
        key = order_key(w, points_per_scale=self.points_per_scale, ev_points=self.ev_points)
        return (key, -w.ev, w.seq, w.task.task_id, w.task.priority)

    def first(self, *, p50: float | None, p90: float | None, premium_only: bool) -> tuple[Rank, str] | None:
        """The first task in matching order that may use the free models (premium only or not)."""
        premium_rule = premium_only and self.min_tier < PREMIUM_TIER

        def allowed(priority: int, ev: float) -> bool:
            return not premium_rule or premium_allowed(priority, ev, p50)

        found = self._first_override(p90, allowed)
        if found is not None:
            return found
        if self.scored:
            # No override waits here, so no normal entry has EV > P90: only the premium rule filters.
            # Without it the first aged entry is the answer; with it (only premium slots free), the
            # first entry of the list kept for the current P50.
            if premium_rule:
                # usually one of the first few aged tasks may use premium: look there first, and
                # bring the premium list up to date (a cost that grows with how far P50 moved) only
                # when many blocked tasks stand ahead
                for entry in islice(self.normal_aged, PREMIUM_LOOKAHEAD):
                    if allowed(entry[4], -entry[1]):
                        return (False, -entry[0], -entry[1], -entry[2]), entry[3]
            aged = self._sync_premium(p50) if premium_rule else self.normal_aged
            if not aged:
                return None
            entry = aged[0]
            return (False, -entry[0], -entry[1], -entry[2]), entry[3]
        return self._first_normal(p90, allowed)

    def _first_override(self, p90: float | None, allowed: _Allowed) -> tuple[Rank, str] | None:
        """The first override task: the highest priority level holding a quest override the free
        models may serve or a task with EV above P90, and at that level the better of the two."""
        ev_overrides = bool(self.normal_by_ev) and is_ev_override(-self.normal_by_ev[0][0], p90)
        if not self.quest and not ev_overrides:
            return None
        quest: tuple[int, Entry] | None = None
        for priority in self.quest.levels:
            head = self.quest.heads[priority]
            if allowed(priority, -head[0]):
                quest = (priority, head)
                break
        # EV above P90 is above P50 too, so the premium rule never refuses these
        normal: tuple[int, Entry] | None = None
        if ev_overrides and p90 is not None and self.scored:
            self.sync_hot(p90)
            if self.hot:
                first = self.hot[0]
                normal = (-first[0], (first[1], first[2], first[3]))
        elif ev_overrides and p90 is not None:
            # one head per level: a level's head has its highest EV
            levels = [p for p, head in self.normal.heads.items() if is_ev_override(-head[0], p90)]
            if levels:
                top = max(levels)
                normal = (top, self.normal.heads[top])
        if quest is None or (normal is not None and normal[0] > quest[0]):
            found = normal
        elif normal is None or quest[0] > normal[0]:
            found = quest
        else:
            found = (quest[0], min(quest[1], normal[1]))
        if found is None:
            return None
        priority, best = found
        return (True, priority, -best[0], -best[1]), best[2]

    def _first_normal(self, p90: float | None, allowed: _Allowed) -> tuple[Rank, str] | None:
        for priority in self.normal.levels:
            bucket = self.normal.by_priority[priority]
            # the first entry that is no EV override: those sort first, so bisect past EVs above P90
            start = None if p90 is None else (-p90, -1, "")
            entry = next((e for e in bucket.irange(start) if not is_ev_override(-e[0], p90)), None)
            if entry is not None and allowed(priority, -entry[0]):
                return (False, priority, -entry[0], -entry[1]), entry[2]
        return None


def order_key(w: WaitingTask, *, points_per_scale: float, ev_points: float) -> float:
    """A non-override task's place in the scored order, smaller first.

    Its score is priority + EV rank x ev_points; waiting one time scale (`w.scale_ms`: the mean
    service time of its models, as measured when it started waiting) adds `points_per_scale`
    points. The task's score at `now` is (now - key) x K / scale, so the key is the instant its
    score would have been 0: since - scale x score / K. With every scale fixed per task a task's
    place never changes while it waits, and one sorted list holds the order. Before anything has
    been measured (no scale) there is no ageing: the key is minus the score. The index never mixes
    the two: every waiting task is given a scale the moment the first one is measured."""
    score = w.task.priority + ev_points * w.ev_rank
    if points_per_scale > 0 and w.scale_ms is not None:
        return w.since_ms - w.scale_ms * score / points_per_scale
    return -score


def _hot(aged: AgedEntry) -> HotEntry:
    return (-aged[4], aged[1], aged[2], aged[3])


def _premium_may(aged: AgedEntry, p50: float | None) -> bool:
    """May a premium slot serve this normal entry under `p50` (policy's rule, asked)?"""
    return premium_allowed(aged[4], -aged[1], p50)


class WaitingIndex:
    """`tiers` (model -> tier) and `sole_tier_first` refine the matching order: when on, a task that
    only one tier can serve (in practice: only premium models meet its requirements) goes before any
    other task that may use the same free slots, because every other contender could be served
    elsewhere. Off, or without `tiers`, the order is override, priority, EV, arrival.

    `points_per_scale` > 0 ages non-override tasks: waiting one time scale (the mean service time
    of the task's models) counts as that many more priority points, so a long wait eventually
    beats a higher priority. `ev_points` > 0 adds EV rank x ev_points to a non-override task's
    priority in the order, so a task worth more (for its priority) goes earlier. Override tasks
    keep their place ahead of all others."""

    def __init__(
        self,
        *,
        tiers: Mapping[str, int] | None = None,
        sole_tier_first: bool = False,
        points_per_scale: float = 0.0,
        ev_points: float = 0.0,
    ) -> None:
        self.tasks: dict[str, WaitingTask] = {}
        self._groups: dict[frozenset[str], Group] = {}
        self._next_seq = 0
        self._tiers = dict(tiers or {})
        self.sole_tier_first = sole_tier_first and bool(self._tiers)
        self._points_per_scale = max(0.0, points_per_scale)
        self._ev_points = max(0.0, ev_points)

    def __len__(self) -> int:
        return len(self.tasks)

    def __contains__(self, task_id: object) -> bool:
        return task_id in self.tasks

    def note_seq(self, seq: int) -> None:
        """An arrival number in use elsewhere (a task held on a slot): never hand it out again."""
        self._next_seq = max(self._next_seq, seq)

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
            sole = len({self._tiers.get(m, 0) for m in w.models}) == 1 and all(m in self._tiers for m in w.models)
            group = self._groups[w.models] = Group(
                models=w.models,
                min_tier=w.min_tier,
                sole_tier=sole,
                points_per_scale=self._points_per_scale,
                ev_points=self._ev_points,
            )
        group.add(w)

    def give_scales(self, scale_of: Callable[[frozenset[str]], float | None]) -> list[WaitingTask]:
        """Give each waiting task that has no time scale yet its models' scale (the first service
        time was just measured), filed again under its new place; returns the tasks changed."""
        changed = []
        for w in [w for w in self.tasks.values() if w.scale_ms is None]:
            scale = scale_of(w.models)
            if scale is not None:
                self.remove(w.task.task_id)
                w.scale_ms = scale
                self.add(w)
                changed.append(w)
        return changed

    def rescale(self, models: frozenset[str], scale_ms: float) -> list[WaitingTask]:
        """Give the waiting tasks of this set of models that had a time scale the new one, each filed
        again under its new place (rare: the set's measured service time drifted past SCALE_DRIFT)."""
        changed = [w for w in self.tasks.values() if w.models == models and w.scale_ms not in (None, scale_ms)]
        for w in changed:
            self.remove(w.task.task_id)
            w.scale_ms = scale_ms
            self.add(w)
        return changed

    def remove(self, task_id: str) -> WaitingTask | None:
        w = self.tasks.pop(task_id, None)
        if w is not None:
            group = self._groups[w.models]
            group.remove(w)
            if group.size == 0:
                del self._groups[w.models]
        return w

    def best_placeable(
        self,
        *,
        free_models: set[str],
        premium_models: frozenset[str],
        p50: float | None,
        p90: float | None,
        overrides_only: bool = False,
    ) -> WaitingTask | None:
        """The first waiting task, in matching order, that some free model may serve (`overrides_only`:
        the first override task; a group's first task is its first override, if it has one)."""
        best: tuple[bool, Rank, str] | None = None
        for models, group in self._groups.items():
            usable = models & free_models
            if not usable:
                continue
            found = group.first(p50=p50, p90=p90, premium_only=usable <= premium_models)
            if found is None or (overrides_only and not found[0][0]):
                continue
            if (self._points_per_scale > 0 or self._ev_points > 0) and not found[0][0]:
                found = (self._aged_rank(self.tasks[found[1]]), found[1])  # one scale for every group
            key = (self.sole_tier_first and group.sole_tier, found[0], found[1])
            if best is None or key[:2] > best[:2]:
                best = key
        return None if best is None else self.tasks[best[2]]

    def _aged_rank(self, w: WaitingTask) -> Rank:
        key = order_key(w, points_per_scale=self._points_per_scale, ev_points=self._ev_points)
        return (False, -key, w.ev, -w.seq)

    @property
    def groups(self) -> Mapping[frozenset[str], Group]:
        """The groups by the models their tasks may use (read them, never change them)."""
        return self._groups

    def standing(self, w: WaitingTask, *, p90: float | None) -> Standing:
        """The task's place in matching order as one comparable value, larger first (the premium
        block aside, which depends on the slots offered): what best_placeable compares."""
        group = self._groups[w.models]
        sole = self.sole_tier_first and group.sole_tier
        if w.is_quest_override or is_ev_override(w.ev, p90):
            return (sole, (True, w.task.priority, w.ev, -w.seq))
        if group.scored:
            return (sole, self._aged_rank(w))
        return (sole, (False, w.task.priority, w.ev, -w.seq))

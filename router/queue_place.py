"""Queue position and ETA of waiting tasks (PROTOCOL.md v1.1 "Queue position and ETA").

A task's position is 1 + the number of waiting tasks that compete for any model it may use and
stand ahead of it in matching order. The tasks of one group (one set of usable models) sit in
sorted orders (router/waiting.py), so the count in a group is a few positional bisections, and
one task's position costs O(groups x (priority levels + log n)), never a scan of the queue.

The ETA counts slot turns: each competing task ahead weighs the share of its group's service
that the task's own models give (a task ahead that other models can serve takes one of ours only
that often), plus one for the task itself; divided by the rate at which the task's models' slots
free up (from the measured mean service times, router/service_rates.py), and times a correction
the router measures itself: tasks that arrive later and go ahead make a plain estimate short, so
each assigned task's real wait against its first estimate teaches the ratio. "Its models" are the
ones it may use now: a task the premium block holds back counts neither premium slots nor the
tasks that only premium slots could serve.
"""

from __future__ import annotations

from router.policy import is_ev_override, is_premium_blocked
from router.service_rates import ServiceRates
from router.slots import SlotLedger
from router.sortedseq import SortedSeq
from router.values import QueuePlace
from router.waiting import Entry, Group, Standing, WaitingIndex, WaitingTask


class FleetRates:
    """How fast any set of models frees up now: live slot counts per model, read once."""

    __slots__ = ("_cache", "_rates", "_slots")

    def __init__(self, rates: ServiceRates, ledger: SlotLedger, now_ms: int) -> None:
        self._rates = rates
        self._slots: dict[str, int] = {}
        for key, pool in ledger.pools.items():
            # busy slots and live free ones take work; gone and silent ones free nothing up
            live = len(pool.busy) + len(pool.free) - ledger.stale_free_count(key, now_ms)
            self._slots[key[0]] = self._slots.get(key[0], 0) + live
        self._cache: dict[frozenset[str], float | None] = {}

    def rate(self, models: frozenset[str]) -> float | None:
        """Completions per second of these models' slots (None: none of them measured yet)."""
        if models not in self._cache:
            self._cache[models] = self._rates.completions_per_s({m: self._slots.get(m, 0) for m in models})
        return self._cache[models]

    def share(self, models: frozenset[str], usable: frozenset[str]) -> float:
        """The part of a competing group's service that `usable` models give: the chance that a
        task of that group ahead takes one of these models' slots rather than another's."""
        whole = self.rate(models)
        if whole is None or whole <= 0:
            return 1.0
        return (self.rate(models & usable) or 0.0) / whole


def usable_models(w: WaitingTask, premium_models: frozenset[str], p50: float | None) -> frozenset[str]:
    """The models the task may use now: its rateable ones, less premium while policy blocks it."""
    if is_premium_blocked(w.task, ev=w.ev, p50=p50, min_tier=w.min_tier):
        return w.models - premium_models
    return w.models


def queue_place(
    index: WaitingIndex,
    fleet: FleetRates,
    w: WaitingTask,
    *,
    usable: frozenset[str],
    p90: float | None,
    correction: float,
) -> tuple[QueuePlace, float | None, float | None]:
    """The task's QueuePlace, the uncorrected estimate its ETA is based on and one slot turn of
    its models (what the correction learns from once the task is assigned), in seconds.
    O(groups x (levels + log n))."""
    standing = index.standing(w, p90=p90)
    ahead, expected = 0, 0.0
    for models, group in index.groups.items():
        if models & usable:
            count = _ahead_in(group, w, standing, index.sole_tier_first, p90)
            ahead += count
            expected += count * fleet.share(models, usable) if count else 0.0
    return _place(w, ahead + 1, expected + 1.0, fleet.rate(usable), correction)


def _place(
    w: WaitingTask, position: int, turns: float, rate: float | None, correction: float
) -> tuple[QueuePlace, float | None, float | None]:
    """`turns` slot turns of the usable models at `rate` completions per second, corrected."""
    turn = None if rate is None or rate <= 0 else 1.0 / rate
    estimate = None if turn is None else turns * turn
    eta = None if estimate is None else estimate * correction
    return QueuePlace(position=position, eta_s=eta, waiting_since_ms=w.since_ms), estimate, turn


def places(
    index: WaitingIndex,
    fleet: FleetRates,
    *,
    premium_models: frozenset[str],
    p50: float | None,
    p90: float | None,
    correction: float,
) -> dict[str, QueuePlace]:
    """Every waiting task's QueuePlace, from one sort of the queue: O(n log n + n x groups)."""
    ordered = sorted(index.tasks.values(), key=lambda w: index.standing(w, p90=p90), reverse=True)
    served: dict[frozenset[str], int] = dict.fromkeys(index.groups, 0)
    competing: dict[frozenset[str], list[tuple[frozenset[str], float]]] = {}
    out: dict[str, QueuePlace] = {}
    for w in ordered:
        usable = usable_models(w, premium_models, p50)
        rivals = competing.get(usable)
        if rivals is None:
            rivals = competing[usable] = [(g, fleet.share(g, usable)) for g in index.groups if g & usable]
        ahead = sum(served[g] for g, _ in rivals)
        expected = sum(served[g] * share for g, share in rivals)
        out[w.task.task_id] = _place(w, ahead + 1, expected + 1.0, fleet.rate(usable), correction)[0]
        served[w.models] += 1
    return out


# -- counting one group ------------------------------------------------------------------------


def _ahead_in(group: Group, w: WaitingTask, standing: Standing, sole_first: bool, p90: float | None) -> int:
    """How many of the group's tasks stand ahead of `w` (`w` itself never counts)."""
    sole = sole_first and group.sole_tier
    if sole != standing[0]:
        return group.size if sole else 0
    override = standing[1][0]
    ahead = _quest_ahead(group, w, override)
    ahead += _ev_overrides_ahead(group, w, override, p90)
    if not override:
        ahead += _normal_ahead(group, w, p90)
    return ahead


def _quest_ahead(group: Group, w: WaitingTask, override: bool) -> int:
    """Quest overrides of the group ahead: all of them for a non-override task; else those of a
    higher priority, or of the same priority and ahead by EV and arrival."""
    count = 0
    for priority in group.quest.levels:
        bucket = group.quest.by_priority[priority]
        if not override or priority > w.task.priority:
            count += len(bucket)
        elif priority == w.task.priority:
            count += bucket.bisect_left(w.entry)
    return count


def _ev_overrides_ahead(group: Group, w: WaitingTask, override: bool, p90: float | None) -> int:
    """EV overrides (normal tasks with EV above P90) of the group ahead of `w`."""
    if p90 is None:
        return 0
    if group.scored:
        group.sync_hot(p90)
        if not override:
            return len(group.hot)
        return group.hot.bisect_left((-w.task.priority, -w.ev, w.seq, w.task.task_id))
    count = 0
    for priority in group.normal.levels:
        bucket = group.normal.by_priority[priority]
        overrides = ev_override_prefix(bucket, p90)
        if not override or priority > w.task.priority:
            count += overrides
        elif priority == w.task.priority:
            count += min(overrides, bucket.bisect_left(w.entry))
    return count


def _normal_ahead(group: Group, w: WaitingTask, p90: float | None) -> int:
    """Tasks of the group that are no override and stand ahead of the non-override task `w`."""
    if group.scored:
        if p90 is not None:
            group.sync_hot(p90)
        aged = group.aged_entry(w)
        ahead = group.normal_aged.bisect_left(aged)
        if p90 is not None:  # EV overrides sit in the scored list too: counted above already
            ahead -= sum(1 for hot in group.hot if group.aged_of[hot[3]] < aged)
        return ahead
    count = 0
    for priority in group.normal.levels:
        bucket = group.normal.by_priority[priority]
        if priority < w.task.priority:
            break  # levels are in descending order
        overrides = ev_override_prefix(bucket, p90)
        if priority > w.task.priority:
            count += len(bucket) - overrides
        else:
            count += max(0, bucket.bisect_left(w.entry) - overrides)
    return count


def ev_override_prefix(bucket: SortedSeq[Entry], p90: float | None) -> int:
    """How many entries of an EV-ordered bucket are EV overrides: a prefix, as the rule is a
    threshold on EV; found by bisection and settled at its edge by the rule itself."""
    if p90 is None or not bucket:
        return 0
    i = bucket.bisect_left((-p90, -1, ""))
    while i < len(bucket) and is_ev_override(-bucket[i][0], p90):
        i += 1
    while i > 0 and not is_ev_override(-bucket[i - 1][0], p90):
        i -= 1
    return i

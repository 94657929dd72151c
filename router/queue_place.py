"""Queue position and ETA of waiting tasks (PROTOCOL.md v1.1 "Queue position and ETA").

A task's position is 1 + the number of waiting tasks that compete for any model it may use and
stand ahead of it in matching order. The tasks of one group (one set of usable models) sit in
sorted orders (router/waiting.py), so the count in a group is a few positional bisections, and
one task's position costs O(groups x (priority levels + log n)), never a scan of the queue.

The ETA is position / (the rate at which those models' slots free up, from the measured mean
service times, router/service_rates.py), times a correction the router measures itself: tasks
that arrive later and go ahead make a plain estimate short, so each assigned task's real wait
against its first estimate teaches the ratio.
"""

from __future__ import annotations

from collections.abc import Iterable

from router.policy import is_ev_override
from router.service_rates import ServiceRates
from router.slots import SlotLedger
from router.sortedseq import SortedSeq
from router.values import QueuePlace
from router.waiting import Entry, Group, Standing, WaitingIndex, WaitingTask


def position(index: WaitingIndex, w: WaitingTask, *, p90: float | None) -> int:
    """1-based place of `w` among the waiting tasks competing for any model it may use."""
    standing = index.standing(w, p90=p90)
    ahead = 0
    for models, group in index.groups.items():
        if models & w.models:
            ahead += _ahead_in(group, w, standing, index.sole_tier_first, p90)
    return ahead + 1


def positions(index: WaitingIndex, *, p90: float | None) -> dict[str, int]:
    """Every waiting task's position, from one sort of the queue (O(n log n + n x groups))."""
    standings = sorted(index.tasks.values(), key=lambda w: index.standing(w, p90=p90), reverse=True)
    competing = {g: [h for h in index.groups if h & g] for g in index.groups}
    served: dict[frozenset[str], int] = dict.fromkeys(index.groups, 0)
    out: dict[str, int] = {}
    for w in standings:
        out[w.task.task_id] = 1 + sum(served[h] for h in competing[w.models])
        served[w.models] += 1
    return out


def serving_rate(rates: ServiceRates, ledger: SlotLedger, models: Iterable[str], now_ms: int) -> float | None:
    """Completions per second of these models' slots that may take work: busy ones and live free
    ones (gone and silent slots free nothing up)."""
    wanted = set(models)
    slots: dict[str, int] = {}
    for key, pool in ledger.pools.items():
        model = key[0]
        if model in wanted:
            live = len(pool.busy) + len(pool.free) - ledger.stale_free_count(key, now_ms)
            slots[model] = slots.get(model, 0) + live
    return rates.completions_per_s(slots)


def queue_place(
    index: WaitingIndex, rates: ServiceRates, ledger: SlotLedger, w: WaitingTask, *, p90: float | None, now_ms: int
) -> tuple[QueuePlace, float | None]:
    """The task's QueuePlace, and the uncorrected estimate its ETA is based on (what the
    correction learns from once the task is assigned)."""
    rate = serving_rate(rates, ledger, w.models, now_ms)
    return place_at(w, position(index, w, p90=p90), rate, rates.correction)


def place_at(w: WaitingTask, place: int, rate: float | None, correction: float) -> tuple[QueuePlace, float | None]:
    """`place` slot turns of the task's models at `rate` completions per second, corrected."""
    estimate = None if rate is None or rate <= 0 else place / rate
    eta = None if estimate is None else estimate * correction
    return QueuePlace(position=place, eta_s=eta, waiting_since_ms=w.since_ms), estimate


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


def places(
    index: WaitingIndex, rates: ServiceRates, ledger: SlotLedger, *, p90: float | None, now_ms: int
) -> dict[str, QueuePlace]:
    """Every waiting task's QueuePlace (the serving rate worked out once per group)."""
    rate_of = {models: serving_rate(rates, ledger, models, now_ms) for models in index.groups}
    out: dict[str, QueuePlace] = {}
    for task_id, place in positions(index, p90=p90).items():
        w = index.tasks[task_id]
        out[task_id] = place_at(w, place, rate_of[w.models], rates.correction)[0]
    return out

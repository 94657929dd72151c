"""One decision (POLICY.md steps 1-8) with its explanation: every slot considered and a verdict."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Final

from router.catalog import PREMIUM_TIER, Catalog, Model
from router.slots import PoolKey, SlotLedger
from router.sortedseq import SortedSeq
from router.values import Alternative, ChosenSlot, Outcome, ReasonCode, Task, Thresholds, Verdict

PREMIUM_BLOCK_PRIORITY: Final = 90
OVERRIDE_QUEST_PRIORITY: Final = 95
LIST_EACH_UP_TO: Final = 10  # slots of one pool sharing a verdict are listed one by one up to this, then grouped
# Pools a task may not use for a reason of the pool's own (a spent budget): the verdict its slots get
# and the detail that goes with it. Only the pools named are barred.
Barred = Mapping[PoolKey, tuple[Verdict, str]]
_NOTHING_BARRED: Final[dict[PoolKey, tuple[Verdict, str]]] = {}


@dataclass(slots=True, kw_only=True, init=False)
class Assessment:
    """Steps 1-5: what the task may use, before looking at any slot. (Built for every decision:
    its `__init__` is written out so that mypyc compiles it; see router/values.py.)"""

    task: Task
    rateable: frozenset[str]
    min_tier: int | None
    thresholds: Thresholds
    override: bool
    premium_blocked: bool
    unreachable: dict[str, int]

    def __init__(
        self,
        *,
        task: Task,
        rateable: frozenset[str],
        min_tier: int | None,
        thresholds: Thresholds,
        override: bool,
        premium_blocked: bool,
        unreachable: dict[str, int],
    ) -> None:
        self.task = task
        self.rateable = rateable
        self.min_tier = min_tier
        self.thresholds = thresholds
        self.override = override
        self.premium_blocked = premium_blocked
        self.unreachable = unreachable

    def allows(self, model: Model) -> bool:
        return model.model_id in self.rateable and not (model.is_premium and self.premium_blocked)


def assess(task: Task, catalog: Catalog, *, ev: float, p50: float | None, p90: float | None) -> Assessment:
    rateable, rateable_ids = catalog.rateable_with_ids(task.requires)
    min_tier = rateable[0].tier if rateable else None
    return Assessment(
        task=task,
        rateable=rateable_ids,
        min_tier=min_tier,
        thresholds=Thresholds(ev=ev, p50=p50, p90=p90),
        override=is_override(task, ev=ev, p90=p90),
        premium_blocked=is_premium_blocked(task, ev=ev, p50=p50, min_tier=min_tier),
        unreachable=catalog.unreachable(task.requires) if not rateable else {},
    )


# The two EV rules (steps 4 and 5) live here and only here: route() and the waiting index both ask
# these functions. Both are thresholds on EV (an answer changes only where EV crosses P50 or P90),
# which is what lets the waiting index keep them as bisectable orders.


def is_quest_override(quest_priority: int | None) -> bool:
    """Step 4's quest part: a quest priority of 95 or more overrides, whatever the EV."""
    return quest_priority is not None and quest_priority >= OVERRIDE_QUEST_PRIORITY


def is_ev_override(ev: float, p90: float | None) -> bool:
    """Step 4's EV part: EV above P90 (no override by EV while the window is empty)."""
    return p90 is not None and ev > p90


def is_override(task: Task, *, ev: float, p90: float | None) -> bool:
    """Step 4: the task may claim a higher tier."""
    return is_quest_override(task.quest_priority) or is_ev_override(ev, p90)


def premium_allowed(priority: int, ev: float, p50: float | None) -> bool:
    """Step 5 for a task that a cheaper tier could serve: premium is allowed unless EV < P50 and
    priority < 90 (always, while the window is empty)."""
    return p50 is None or priority >= PREMIUM_BLOCK_PRIORITY or not ev < p50


def is_premium_blocked(task: Task, *, ev: float, p50: float | None, min_tier: int | None) -> bool:
    """Step 5: premium is blocked for this task (never when only premium models are rateable)."""
    if min_tier is None or min_tier >= PREMIUM_TIER:
        return False
    return not premium_allowed(task.priority, ev, p50)


PREMIUM_BLOCK_TEXT: Final = f"EV below P50 and priority < {PREMIUM_BLOCK_PRIORITY}"
PREMIUM_ALLOWED_TEXT: Final = f"EV >= P50 or priority >= {PREMIUM_BLOCK_PRIORITY}"


@dataclass(slots=True, kw_only=True, init=False)
class Routed:
    outcome: Outcome
    reason_code: ReasonCode
    reason: str
    chosen: ChosenSlot | None
    alternatives: tuple[Alternative, ...]

    def __init__(
        self,
        *,
        outcome: Outcome,
        reason_code: ReasonCode,
        reason: str,
        chosen: ChosenSlot | None,
        alternatives: tuple[Alternative, ...],
    ) -> None:
        self.outcome = outcome
        self.reason_code = reason_code
        self.reason = reason
        self.chosen = chosen
        self.alternatives = alternatives


class _Candidate:
    __slots__ = ("account", "model", "slot_id", "tier", "utilisation")

    def __init__(self, tier: int, utilisation: float, slot_id: str, model: str, account: str) -> None:
        self.tier = tier
        self.utilisation = utilisation
        self.slot_id = slot_id
        self.model = model
        self.account = account


def route(a: Assessment, catalog: Catalog, ledger: SlotLedger, *, now_ms: int, barred: Barred | None = None) -> Routed:
    """Steps 6-8 against the ledger as it stands, with a verdict for every slot; `barred` pools are
    no candidates (their slots get the verdict given)."""
    barred = _NOTHING_BARRED if barred is None else barred
    if not a.rateable:
        return Routed(
            outcome=Outcome.UNROUTABLE,
            reason_code=ReasonCode.NO_CAPABLE_MODEL,
            reason=_unroutable_reason(a),
            chosen=None,
            alternatives=tuple(_incapable_alternatives(a, catalog, ledger)),
        )
    candidates = _candidates(a, catalog, ledger, now_ms, barred)
    chosen = _choose(candidates, override=a.override)
    alternatives = tuple(_explain(a, catalog, ledger, now_ms, chosen, barred))
    if chosen is None:
        code, reason = _await_reason(a, alternatives, _bar_kept_it(a, catalog, ledger, now_ms, barred))
        return Routed(
            outcome=Outcome.AWAIT_SLOT, reason_code=code, reason=reason, chosen=None, alternatives=alternatives
        )
    slot = ChosenSlot(slot_id=chosen.slot_id, model=chosen.model, account=chosen.account, tier=chosen.tier)
    code, reason = _assigned_reason(a, slot)
    return Routed(outcome=Outcome.ASSIGNED, reason_code=code, reason=reason, chosen=slot, alternatives=alternatives)


def _candidates(a: Assessment, catalog: Catalog, ledger: SlotLedger, now_ms: int, barred: Barred) -> list[_Candidate]:
    """Step 6, one per pool: the smallest live free slot id wins inside a pool anyway."""
    found = []
    for key, pool in ledger.pools.items():
        model_id, account = key
        model = catalog.models.get(model_id)
        if model is None or not pool.free or not a.allows(model) or key in barred:
            continue
        slot_id = ledger.first_live_free((model_id, account), now_ms)
        if slot_id is not None:
            util = ledger.utilisation_of(account, model_id)
            found.append(_Candidate(model.tier, util, slot_id, model_id, account))
    return found


def _bar_kept_it(a: Assessment, catalog: Catalog, ledger: SlotLedger, now_ms: int, barred: Barred) -> bool:
    """Whether a barred pool had a live free slot the task could otherwise have taken."""
    for key in barred:
        model = catalog.models.get(key[0])
        if model is not None and a.allows(model) and ledger.first_live_free(key, now_ms) is not None:
            return True
    return False


def _choose(candidates: list[_Candidate], *, override: bool) -> _Candidate | None:
    """Step 8: override takes the highest tier, others the lowest; then utilisation, then slot id."""
    if not candidates:
        return None
    sign = -1 if override else 1
    return min(candidates, key=lambda c: (sign * c.tier, c.utilisation, c.slot_id))


def _explain(
    a: Assessment, catalog: Catalog, ledger: SlotLedger, now_ms: int, chosen: _Candidate | None, barred: Barred
) -> list[Alternative]:
    """Verdicts per pool: busy and gone slots share one verdict each, so only free slots are looked at
    one by one; that keeps a decision's cost proportional to pools and free slots, not the fleet.
    (The helpers append to one list: every decision runs this, and nested generators cost more
    than the verdicts themselves.)"""
    out: list[Alternative] = []
    for key, pool in sorted(ledger.pools.items()):
        model_id, account = key
        model = catalog.models.get(model_id)
        if model is None or not len(pool):
            continue
        _listed(out, model, account, Verdict.GONE, None, pool.gone)
        bar = barred.get(key)
        if model.model_id not in a.rateable:
            _listed(out, model, account, Verdict.INCAPABLE, _shortfall_text(model, a.task), pool.free, pool.busy)
        elif model.is_premium and a.premium_blocked:
            _listed(out, model, account, Verdict.PREMIUM_BLOCKED, None, pool.free, pool.busy)
        elif bar is not None:
            _listed(out, model, account, bar[0], bar[1], pool.free, pool.busy)
        else:
            _listed(out, model, account, Verdict.BUSY, None, pool.busy)
            _free_verdicts(out, model, account, pool.free, ledger, now_ms, chosen)
    return out


def _free_verdicts(
    out: list[Alternative],
    model: Model,
    account: str,
    free: Collection[str],
    ledger: SlotLedger,
    now_ms: int,
    chosen: _Candidate | None,
) -> None:
    """Stale slots, then the chosen one, then the live rest: every live free slot of a pool shares one
    verdict (bar the chosen), so a pool costs O(log n) plus what is listed, however many are free."""
    key = (model.model_id, account)
    stale = ledger.stale_free_count(key, now_ms)
    if stale:
        _stale(out, model, account, ledger, now_ms, stale)
    live = len(free) - stale
    if live <= 0:
        return
    if chosen is None or (chosen.model, chosen.account) == key:
        chosen_id = chosen.slot_id if chosen else None
        # with no choice made a live, allowed free slot cannot exist: route() would have chosen one
        out.append(_one(model, account, Verdict.CHOSEN, None, chosen_id or ledger.live_free_ids(key, now_ms, 1)[0]))
        rest = [i for i in ledger.live_free_ids(key, now_ms, LIST_EACH_UP_TO + 1) if i != chosen_id]
        detail = f"slot id after {chosen_id}" if chosen_id else None
        _listed_ids(out, model, account, Verdict.TIE_BREAK, detail, rest[:LIST_EACH_UP_TO], live - 1)
        return
    util = ledger.utilisation_of(account, model.model_id)
    verdict, detail = _live_verdict(model, util, chosen)
    _listed_ids(out, model, account, verdict, detail, ledger.live_free_ids(key, now_ms, LIST_EACH_UP_TO), live)


def _stale(out: list[Alternative], model: Model, account: str, ledger: SlotLedger, now_ms: int, count: int) -> None:
    ids = ledger.stale_free_ids((model.model_id, account), now_ms, LIST_EACH_UP_TO)
    if count <= LIST_EACH_UP_TO:
        for slot_id in sorted(ids):
            silent_s = (now_ms - ledger.slots[slot_id].last_heard_ms) // 1000
            out.append(_one(model, account, Verdict.STALE, f"last heard {silent_s}s ago", slot_id))
        return
    detail = f"not heard from for over {ledger.stale_after_ms // 1000}s"
    _listed_ids(out, model, account, Verdict.STALE, detail, ids, count)


def _live_verdict(model: Model, util: float, chosen: _Candidate) -> tuple[Verdict, str | None]:
    if model.tier != chosen.tier:
        return Verdict.TIER_NOT_PREFERRED, f"tier {model.tier}, chose tier {chosen.tier}"
    if util > chosen.utilisation:
        return Verdict.HIGHER_UTILISATION, f"utilisation {util:.2f} > {chosen.utilisation:.2f}"
    return Verdict.TIE_BREAK, f"slot id after {chosen.slot_id}"


def _one(model: Model, account: str, verdict: Verdict, detail: str | None, slot_id: str) -> Alternative:
    return Alternative(
        slot_id=slot_id, model=model.model_id, account=account, tier=model.tier, verdict=verdict, detail=detail
    )


def _listed_ids(
    out: list[Alternative],
    model: Model,
    account: str,
    verdict: Verdict,
    detail: str | None,
    first: list[str],
    total: int,
) -> None:
    """`total` slots sharing a verdict, of which `first` are the first few: one by one up to the
    listing limit, else one grouped entry."""
    if total <= 0:
        return
    if total <= LIST_EACH_UP_TO:
        out.extend(_one(model, account, verdict, detail, slot_id) for slot_id in first)
        return
    out.append(
        Alternative(
            slot_id=None,
            model=model.model_id,
            account=account,
            tier=model.tier,
            verdict=verdict,
            detail=detail,
            count=total,
            slot_ids=tuple(first[:LIST_EACH_UP_TO]),
        )
    )


def _listed(
    out: list[Alternative], model: Model, account: str, verdict: Verdict, detail: str | None, *buckets: SortedSeq[str]
) -> None:
    """Every slot of `buckets`, sharing one verdict."""
    total = sum(len(b) for b in buckets)
    if total:
        first: list[str] = []
        for bucket in buckets:
            if len(first) >= LIST_EACH_UP_TO:
                break
            first += bucket.first(LIST_EACH_UP_TO - len(first))
        _listed_ids(out, model, account, verdict, detail, first, total)


def _incapable_alternatives(a: Assessment, catalog: Catalog, ledger: SlotLedger) -> list[Alternative]:
    out: list[Alternative] = []
    for (model_id, account), pool in sorted(ledger.pools.items()):
        model = catalog.models.get(model_id)
        if model is None or not len(pool):
            continue
        text = _shortfall_text(model, a.task)
        _listed(out, model, account, Verdict.INCAPABLE, text, pool.free, pool.busy, pool.gone)
    return out


def _shortfall_text(model: Model, task: Task) -> str:
    return ", ".join(
        f"{name} {has} < {needed}" for name, (needed, has) in sorted(model.shortfalls(task.requires).items())
    )


# Formatting a float to 3 significant digits costs more than the rest of a reason sentence, and
# every decision formats three (EV, P50, P90) drawn from a small set of values that repeat: the
# window's percentiles change slowly and EVs come from a scorer or the dispatcher's few levels.
_G3_CACHE: Final[dict[float, str]] = {}
_G3_CACHE_MAX: Final = 4096


def _g3(value: float) -> str:
    """`f"{value:.3g}"`, remembered (0.0 and -0.0 are equal keys but print apart: not cached)."""
    text = _G3_CACHE.get(value)
    if text is None:
        text = f"{value:.3g}"
        if value != 0.0:
            if len(_G3_CACHE) >= _G3_CACHE_MAX:
                _G3_CACHE.clear()
            _G3_CACHE[value] = text
    return text


def _numbers(a: Assessment) -> str:
    t = a.thresholds
    p50 = "n/a" if t.p50 is None else _g3(t.p50)
    p90 = "n/a" if t.p90 is None else _g3(t.p90)
    quest = "" if a.task.quest_priority is None else f", quest priority {a.task.quest_priority}"
    return f"EV {_g3(t.ev)} (P50 {p50}, P90 {p90}), priority {a.task.priority}{quest}"


def _override_why(a: Assessment) -> str:
    t = a.thresholds
    if is_ev_override(t.ev, t.p90):
        assert t.p90 is not None
        return f"override: EV {_g3(t.ev)} > P90 {_g3(t.p90)}"
    return f"override: quest priority {a.task.quest_priority} >= {OVERRIDE_QUEST_PRIORITY}"


def _assigned_reason(a: Assessment, slot: ChosenSlot) -> tuple[ReasonCode, str]:
    where = f"Assigned to {slot.slot_id} ({slot.model}, tier {slot.tier})"
    if a.override:
        return (
            ReasonCode.OVERRIDE_HIGHEST_TIER,
            f"{where}: {_override_why(a)}, so it takes the highest free tier; {_numbers(a)}.",
        )
    if slot.tier >= PREMIUM_TIER and a.min_tier is not None and a.min_tier >= PREMIUM_TIER:
        return ReasonCode.ONLY_PREMIUM_RATEABLE, f"{where}: only premium models meet its requirements; {_numbers(a)}."
    premium_note = ""
    if slot.tier >= PREMIUM_TIER:
        premium_note = f" (premium allowed: {PREMIUM_ALLOWED_TEXT}; no cheaper capable slot was free)"
    return (
        ReasonCode.CHEAPEST_CAPABLE,
        f"{where}: the cheapest free capable tier (lowest rateable tier {a.min_tier}){premium_note}; {_numbers(a)}.",
    )


def _await_reason(a: Assessment, alternatives: tuple[Alternative, ...], bar_kept_it: bool) -> tuple[ReasonCode, str]:
    tally: dict[Verdict, int] = {}
    for alt in alternatives:
        tally[alt.verdict] = tally.get(alt.verdict, 0) + alt.count
    rateable = ", ".join(sorted(a.rateable))
    spent = tally.get(Verdict.BUDGET_EXHAUSTED, 0)
    if bar_kept_it or (spent and not tally.get(Verdict.BUSY) and not tally.get(Verdict.STALE)):
        budgets = sorted({alt.detail or "" for alt in alternatives if alt.verdict is Verdict.BUDGET_EXHAUSTED})
        return (
            ReasonCode.BUDGET_EXHAUSTED,
            f"Waiting: the capable slots it may use ({spent}) are under a spent budget "
            f"({'; '.join(budgets)}); rateable: {rateable}; {_numbers(a)}.",
        )
    if tally.get(Verdict.PREMIUM_BLOCKED) and not tally.get(Verdict.BUSY) and not tally.get(Verdict.STALE):
        return (
            ReasonCode.PREMIUM_BLOCKED,
            f"Waiting: only premium slots could serve it and premium is blocked ({PREMIUM_BLOCK_TEXT}); "
            f"rateable: {rateable}; {_numbers(a)}.",
        )
    if tally.get(Verdict.STALE) and not tally.get(Verdict.BUSY):
        return (
            ReasonCode.NO_LIVE_SLOT,
            f"Waiting: the free capable slots ({tally[Verdict.STALE]}) have not been heard from recently; "
            f"rateable: {rateable}; {_numbers(a)}.",
        )
    busy = tally.get(Verdict.BUSY, 0)
    return (
        ReasonCode.NO_FREE_CAPABLE_SLOT,
        f"Waiting: no free capable slot ({busy} capable slots busy); rateable: {rateable}; {_numbers(a)}.",
    )


def _unroutable_reason(a: Assessment) -> str:
    gaps = ", ".join(
        f"{name} {needed} (best {a.unreachable.get(name, 0)})"
        for name, needed in sorted(a.task.requires.items())
        if name in a.unreachable
    )
    if not gaps:
        gaps = "no single model meets all requirements together: " + ", ".join(
            f"{n} {v}" for n, v in sorted(a.task.requires.items())
        )
    return f"Unroutable: no model in the catalogue meets its requirements: {gaps}."

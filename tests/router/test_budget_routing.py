"""Budgets in the router: spent budgets bar their slots (soft: but for override tasks), spend follows
estimates and usage once, survives the snapshot, and re-opens at the UTC rollover."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from support.router_harness import RouterHarness, decisions, free, pending

from router.budgets import Budget, BudgetMode, Period
from router.catalog import Catalog
from router.engine import Router, UsageReported
from router.values import Decision, Event, Outcome, ReasonCode, SlotFree, SlotHeartbeat, TaskPending, Usage, Verdict

DAY1 = int(datetime(2026, 12, 8, 10, 0, tzinfo=UTC).timestamp() * 1000)
DAY2 = int(datetime(2026, 12, 9, 0, 0, 1, tzinfo=UTC).timestamp() * 1000)
OPUS_COST = 0.20  # the packaged catalogue's opus price for the "unknown" layer's token estimate


def premium_budget(usd: float, mode: BudgetMode = BudgetMode.SOFT) -> Budget:
    return Budget(name="premium-daily", period=Period.DAY, usd=usd, mode=mode, models=frozenset({"opus"}))


def task(task_id: str, priority: int = 95, **kw: Any) -> TaskPending:
    return pending(task_id, priority, **kw)


def freed(slot_id: str, model: str, done: str | None = None, cost: float | None = None) -> SlotFree:
    return free(slot_id, model, completed=None if done is None else Usage(task_id=done, cost_usd=cost))


class Run:
    """A RouterHarness on DAY1 whose batches return their decisions."""

    def __init__(self, catalog: Catalog, *budgets: Budget, snapshot: bool = False) -> None:
        self.h = RouterHarness(catalog, budgets=budgets, snapshot=snapshot)
        self.h.now_ms = DAY1
        self.router = self.h.router

    def batch(self, *events: Event, now_ms: int | None = None) -> list[Decision]:
        return decisions(self.h.batch(*events, now_ms=now_ms))

    def spent(self, now_ms: int = DAY1) -> float:
        return self.router.budgets.spent("premium-daily", now_ms)


def one(decisions: list[Decision], task_id: str) -> Decision:
    (found,) = [d for d in decisions if d.task.task_id == task_id]
    return found


def spend_opus_budget(run: Run) -> None:
    """t1 (priority 95: premium allowed) takes the only free slot, opus, and spends the budget."""
    first = run.batch(freed("o1", "opus"), task("t1"))
    assert one(first, "t1").chosen is not None and one(first, "t1").chosen.slot_id == "o1"
    assert run.spent() == pytest.approx(OPUS_COST)
    run.batch(freed("o1", "opus", done="t1"))  # no cost reported: the estimate stands


def test_a_spent_soft_budget_sends_normal_work_elsewhere_and_lets_overrides_through(catalog: Catalog) -> None:
    run = Run(catalog, premium_budget(0.15))
    spend_opus_budget(run)
    waiting = one(run.batch(task("t2")), "t2")
    assert waiting.outcome is Outcome.AWAIT_SLOT
    assert waiting.reason_code is ReasonCode.BUDGET_EXHAUSTED
    (opus,) = [a for a in waiting.alternatives if a.slot_id == "o1"]
    assert opus.verdict is Verdict.BUDGET_EXHAUSTED
    assert opus.detail == "premium-daily: $0.20 / $0.15 (day)"
    placed = one(run.batch(freed("s1", "sonnet")), "t2")
    assert placed.chosen is not None and placed.chosen.slot_id == "s1"
    override = one(run.batch(task("t3", quest_priority=95)), "t3")
    assert override.chosen is not None and override.chosen.slot_id == "o1"
    assert run.spent() == pytest.approx(2 * OPUS_COST)


def test_a_spent_hard_budget_bars_override_tasks_too(catalog: Catalog) -> None:
    run = Run(catalog, premium_budget(0.15, BudgetMode.HARD))
    spend_opus_budget(run)
    override = one(run.batch(task("t3", quest_priority=95)), "t3")
    assert override.outcome is Outcome.AWAIT_SLOT and override.reason_code is ReasonCode.BUDGET_EXHAUSTED


def test_reported_cost_replaces_the_estimate_once(catalog: Catalog) -> None:
    run = Run(catalog, premium_budget(0.15))
    run.batch(freed("o1", "opus"), task("t1"))
    run.batch(freed("o1", "opus", done="t1", cost=0.05))
    run.batch(freed("o1", "opus", done="t1", cost=0.05))  # a duplicated report
    assert run.spent() == pytest.approx(0.05)
    placed = one(run.batch(task("t2")), "t2")
    assert placed.chosen is not None and placed.chosen.slot_id == "o1"


def test_the_day_rollover_places_the_task_that_waited_for_the_budget(catalog: Catalog) -> None:
    run = Run(catalog, premium_budget(0.15))
    spend_opus_budget(run)
    assert one(run.batch(task("t2")), "t2").outcome is Outcome.AWAIT_SLOT
    alive = SlotHeartbeat(slot_id="o1")
    assert run.batch(alive, now_ms=DAY1 + 3_600_000) == []  # still the same day: nothing moves
    placed = one(run.batch(alive, now_ms=DAY2), "t2")
    assert placed.chosen is not None and placed.chosen.slot_id == "o1"
    assert run.spent(DAY2) == pytest.approx(OPUS_COST)


def test_raising_the_budget_reopens_its_slots(catalog: Catalog) -> None:
    run = Run(catalog, premium_budget(0.15))
    spend_opus_budget(run)
    run.batch(task("t2"))
    run.router.set_budgets([premium_budget(10.0)])
    placed = one(run.batch(), "t2")
    assert placed.chosen is not None and placed.chosen.slot_id == "o1"


def test_spend_survives_the_snapshot(catalog: Catalog) -> None:
    run = Run(catalog, premium_budget(1.0), snapshot=True)
    run.batch(freed("o1", "opus"), task("t1"))
    assert run.h.snapshot is not None
    assert run.h.snapshot.budgets == {"premium-daily": ["2026-12-08", pytest.approx(OPUS_COST), 0]}
    restarted = run.h.restarted()
    assert restarted.router.budgets.spent("premium-daily", DAY1) == pytest.approx(OPUS_COST)
    restarted.batch(freed("o1", "opus", done="t1", cost=0.5))
    assert restarted.router.budgets.spent("premium-daily", DAY1) == pytest.approx(0.5)  # the charge came along
    assert restarted.snapshot is not None and restarted.snapshot.budgets["premium-daily"][1] == pytest.approx(0.5)
    restarted.batch()
    assert restarted.router.drain_changes().budgets is None  # written once per change


def test_no_budgets_changes_nothing_in_the_snapshot(catalog: Catalog) -> None:
    run = Run(catalog)
    run.batch(freed("o1", "opus"), task("t1"))
    changes = run.router.drain_changes()
    assert changes.budgets is None
    assert all("charge" not in (ref or {}) for ref in changes.assigned.values())


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(["task", "free", "override"]), st.integers(0, 3), st.floats(0, 1)),
        min_size=1,
        max_size=40,
    )
)
def test_spend_never_passes_a_hard_budget_by_more_than_one_estimate(
    catalog: Catalog, steps: list[tuple[str, int, float]]
) -> None:
    """Random tasks, completions (with actual costs at most the estimate) and overrides against a hard
    opus budget: the spend stays within the limit plus the largest single estimate."""
    limit = 0.5
    run = Run(catalog, premium_budget(limit, BudgetMode.HARD))
    run.batch(*(freed(f"o{i}", "opus") for i in range(4)))
    held: dict[str, str] = {}
    for n, (kind, slot, fraction) in enumerate(steps):
        if kind == "free":
            task_id = held.pop(f"o{slot}", None)
            events: list[Event] = [freed(f"o{slot}", "opus", done=task_id, cost=OPUS_COST * fraction)]
        else:
            events = [task(f"t{n}", quest_priority=95 if kind == "override" else None)]
        for d in run.batch(*events):
            if d.chosen is not None:
                held[d.chosen.slot_id] = d.task.task_id
        assert run.spent() <= limit + OPUS_COST + 1e-9


def test_a_soft_spent_pool_serves_every_waiting_override_task_in_one_round(catalog: Catalog) -> None:
    run = Run(catalog, premium_budget(0.15))
    spend_opus_budget(run)
    run.batch(freed("o1", "opus", done="t1"))
    overrides = [task(f"v{i}", quest_priority=97) for i in range(3)]
    run.batch(*overrides)  # o1 takes one of them; the others wait
    placed = run.batch(freed("o1", "opus", done="v0"), freed("o2", "opus"), freed("o3", "opus"))
    assert sorted(d.chosen.slot_id for d in placed if d.chosen is not None) == ["o1", "o2"]


def test_an_account_wide_budget_spent_mid_round_bars_its_other_pools_without_ending_the_round(
    catalog: Catalog,
) -> None:
    """A budget over every model of account a spent by the round's first assignment: the round goes
    on to the other account's slot instead of stopping at a task route() bars."""
    budget = Budget(name="acct-a", period=Period.DAY, usd=0.01, mode=BudgetMode.HARD, account="a")
    run = Run(catalog, budget)
    run.batch(task("t1", priority=40), task("t2", priority=40, requires={"reasoning": 7}), task("t3", priority=40))
    placed = run.batch(free("ha", "haiku", account="a"), free("sa", "sonnet", account="a"), free("hb", "haiku", "b"))
    assert {d.task.task_id: d.chosen.slot_id for d in placed if d.chosen is not None} == {"t1": "ha", "t3": "hb"}


def test_a_dropped_budget_is_deleted_from_the_snapshot(catalog: Catalog) -> None:
    run = Run(catalog, premium_budget(1.0), snapshot=True)
    run.batch(freed("o1", "opus"), task("t1"))
    run.router.set_budgets([])
    run.batch()
    assert run.h.snapshot is not None and "premium-daily" not in run.h.snapshot.budgets
    run.router.set_budgets([premium_budget(1.0)])
    assert run.spent() == 0.0


@pytest.mark.parametrize(
    "bad", [["2026-12-08", "x", 0], ["2026-12-08", 1.0], "text", None, ["2026-12-08", float("nan"), 0], {"a": 1}]
)
def test_a_spend_entry_not_of_the_routers_form_is_left_out_on_restore(catalog: Catalog, bad: object) -> None:
    router = Router(catalog, budgets=[premium_budget(1.0)])
    router.restore(slots=[], waiting=[], assigned={}, ev_values=[], utilisation={}, budgets={"premium-daily": bad})
    assert router.budgets.spent("premium-daily", DAY1) == 0.0


def test_a_malformed_charge_on_an_assignment_changes_nothing(catalog: Catalog) -> None:
    run = Run(catalog, premium_budget(1.0))
    run.batch(freed("o1", "opus"), task("t1"))
    run.router.assigned["t1"]["charge"] = [["premium-daily"], [], "x"]
    run.batch(freed("o1", "opus", done="t1", cost=0.5))
    assert run.spent() == pytest.approx(OPUS_COST)


def test_a_late_report_from_a_lapsed_slot_settles_nothing_of_the_new_assignment(catalog: Catalog) -> None:
    """t1 lapses on o1 and goes to o2; o1's late report must neither settle o2's charge nor use up
    o2's own report."""
    run = Run(catalog, premium_budget(10.0))
    run.batch(freed("o1", "opus"), task("t1"))
    run.h.advance(200_000)  # o1 silent past the staleness window and the assignment timeout
    moved = run.batch(freed("o2", "opus"))
    assert [d.chosen.slot_id for d in moved if d.chosen is not None] == ["o2"]
    late = run.h.batch(freed("o1", "opus", done="t1", cost=5.0))
    (report,) = [e for e in late if isinstance(e, UsageReported)]
    assert report.decision_id is None  # not o2's decision
    assert run.spent() == pytest.approx(OPUS_COST)  # the lapse refunded o1's booking; o2's stands
    run.batch(freed("o2", "opus", done="t1", cost=0.3))
    assert run.spent() == pytest.approx(0.3)

"""EVs at the ends of the float range (valid input: the protocol's `ev` is any number): the EV
window's percentiles stay numbers, and no premium decision goes wrong on them."""

from __future__ import annotations

import math

from support.router_harness import RouterHarness, decisions, free, pending

from router.catalog import load_catalog
from router.engine import Effect
from router.slots import SlotState
from router.values import Outcome

BIG = 1.7e308  # two of them sum to inf, and inf * 0 is NaN


def assert_assignments_booked(h: RouterHarness, effects: list[Effect]) -> None:
    """Every ASSIGNED decision must have booked its slot and taken the task out of waiting."""
    for d in decisions(effects):
        if d.outcome is Outcome.ASSIGNED:
            assert d.chosen is not None
            rec = h.router.ledger.slots[d.chosen.slot_id]
            assert rec.state is SlotState.BUSY and rec.task_id == d.task.task_id, (
                f"{d.decision_id}: assigned {d.task.task_id} to {d.chosen.slot_id} but the slot is "
                f"{rec.state.value} with {rec.task_id}"
            )
            assert d.task.task_id not in h.router.waiting, f"{d.task.task_id} assigned yet still waiting"


def test_extreme_ev_values_make_p50_nan_and_announce_wait_assigns_without_booking() -> None:
    """With +-1.7e308 in the window, P50 must stay a number: were it NaN (inf * 0), the waiting
    index would refuse premium (ev >= nan is False) while route() allowed it (ev < nan is False),
    and an 'await_slot' announcement would come back ASSIGNED without booking the slot."""
    h = RouterHarness(load_catalog(), snapshot=True)
    # unroutable tasks still feed the EV window
    h.batch(*[pending(f"x{i}", 50, {"no-such-cap": 1}, ev=ev) for i, ev in enumerate((-BIG, -BIG, BIG))])
    assert h.router.ev_window.p50 is None or not math.isnan(h.router.ev_window.p50), "P50 is NaN"


def test_extreme_ev_nan_p50_double_books_a_premium_slot() -> None:
    # ageing off (a supported config) takes the index's _first_normal path
    h = RouterHarness(load_catalog(), snapshot=True, ageing_points_per_service_time=0.0, ev_rank_points=0.0)
    h.batch(*[pending(f"x{i}", 50, {"no-such-cap": 1}, ev=-BIG) for i in range(2)])
    # t1's own EV makes the window [-big, -big, big]: P50 would be nan, P90 inf
    effects = h.batch(free("o1", "opus"), pending("t1", 50, ev=BIG))
    assert_assignments_booked(h, effects)


def test_nan_p50_corrupts_aged_premium_list_and_wedges_default_config() -> None:
    """Default config (ageing on). A NaN P50 stored as the aged premium list's threshold would make
    every later sync compare against nan and move nothing, leaving a low-EV task in the premium
    list, to be offered to a free premium slot that route() refuses (the premium block)."""
    h = RouterHarness(load_catalog(), snapshot=True)
    h.batch(pending("x0", 50, {"no-such-cap": 1}, ev=-BIG))
    # window becomes [-big, -big, big]. T takes o1; L waits in the same group.
    h.batch(free("o1", "opus"), pending("T", 80, ev=BIG), pending("L", 50, ev=-BIG))
    assert h.router.ledger.slots["o1"].task_id == "T" and "L" in h.router.waiting
    h.batch(*[pending(f"y{i}", 50, {"no-such-cap": 1}, ev=0.9) for i in range(10)])
    assert h.router.ev_window.p50 == 0.9
    effects = h.batch(free("o2", "opus"))  # L (EV far below P50, priority 50) may not use premium
    assert [d.outcome for d in decisions(effects)] == []

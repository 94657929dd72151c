"""Assignments that lapse: the slot leaves or goes silent before it reports task.started."""

from __future__ import annotations

import pytest
from support.router_harness import T0, RouterHarness, decisions, free, pending

from router.catalog import Catalog
from router.values import Outcome, ReasonCode, SlotGone, SlotHeartbeat, TaskStarted, Usage


@pytest.fixture
def h(catalog: Catalog) -> RouterHarness:
    """A harness whose slot h1 holds task a, assigned at T0 and not started."""
    harness = RouterHarness(catalog, snapshot=True, stale_after_s=10, assignment_timeout_s=30)
    (d,) = decisions(harness.batch(free("h1", "haiku"), pending("a", 50), now_ms=T0))
    assert d.chosen is not None and d.chosen.slot_id == "h1"
    return harness


def test_slot_gone_before_start_sends_the_task_back_to_waiting(h: RouterHarness) -> None:
    (lapsed,) = decisions(h.batch(SlotGone(slot_id="h1"), now_ms=T0 + 1))
    assert (lapsed.outcome, lapsed.reason_code) == (Outcome.AWAIT_SLOT, ReasonCode.ASSIGNMENT_LAPSED)
    assert "slot.gone before starting" in lapsed.reason
    assert "a" in h.router.waiting and "a" not in h.router.assigned
    (again,) = decisions(h.batch(free("h2", "haiku"), now_ms=T0 + 2))
    assert again.task.task_id == "a" and again.chosen is not None and again.chosen.slot_id == "h2"


def test_slot_gone_after_start_keeps_the_task_assigned(h: RouterHarness) -> None:
    events = (TaskStarted(task_id="a", slot_id="h1"), SlotGone(slot_id="h1"))
    assert decisions(h.batch(*events, now_ms=T0 + 1)) == []
    assert "a" not in h.router.waiting and "a" in h.router.assigned


def test_silent_unstarted_assignment_lapses_after_the_timeout(h: RouterHarness) -> None:
    assert decisions(h.batch(now_ms=T0 + 29_000)) == []  # within the timeout
    (lapsed,) = decisions(h.batch(now_ms=T0 + 31_000))
    assert lapsed.reason_code is ReasonCode.ASSIGNMENT_LAPSED
    assert "not heard from for 31s" in lapsed.reason
    assert h.router.ledger.slots["h1"].state.value == "gone"  # no more work until it says slot.free again


def test_heartbeating_slot_keeps_its_task_without_task_started(h: RouterHarness) -> None:
    """Slots that predate task.started but heartbeat while working are never robbed of their task."""
    for second in range(5, 120, 5):
        assert decisions(h.batch(SlotHeartbeat(slot_id="h1"), now_ms=T0 + second * 1000)) == []
    assert h.router.ledger.slots["h1"].task_id == "a"


def test_lapsed_task_survives_a_restart_from_the_snapshot(h: RouterHarness) -> None:
    restored = h.restarted()
    (lapsed,) = decisions(restored.batch(SlotGone(slot_id="h1"), now_ms=T0 + 1))
    assert lapsed.task.task_id == "a" and lapsed.reason_code is ReasonCode.ASSIGNMENT_LAPSED


def test_duplicated_slot_free_for_an_earlier_task_does_not_free_a_busy_slot(h: RouterHarness) -> None:
    """A producer's retried XADD can deliver `slot.free` (completed t1) again after the slot took t2."""
    done_a = free("h1", "haiku", completed=Usage(task_id="a"))
    (second,) = decisions(h.batch(done_a, pending("b", 40), now_ms=T0 + 5))
    assert second.task.task_id == "b" and second.chosen is not None and second.chosen.slot_id == "h1"
    assert decisions(h.batch(done_a, pending("c", 40), now_ms=T0 + 6))[0].outcome is Outcome.AWAIT_SLOT
    assert h.router.ledger.slots["h1"].task_id == "b"


def test_the_lapse_order_answers_exactly_the_due_slots_however_often_slots_change() -> None:
    """Slots change state at every assignment, and each change leaves an outdated entry in the
    lapse order for later: those must never be answered, and never pile up."""
    from router.slots import SlotLedger

    ledger = SlotLedger(stale_after_ms=1_000, assignment_timeout_ms=5_000)
    slots = [f"s{i}" for i in range(20)]
    for round_no in range(200):  # 4,000 assignments: far more outdated entries than slots
        now = round_no * 100
        for slot_id in slots:
            ledger.mark_free(slot_id=slot_id, model="haiku", account="default", now_ms=now)
            ledger.mark_busy(slot_id, task_id=f"t{round_no}", decision_id=f"d{round_no}", now_ms=now)
            if round_no % 2 and slot_id < "s1":  # "s0": started, so never due
                ledger.mark_started(slot_id, f"t{round_no}", now)
        assert len(ledger._lapse_heap) <= 2 * len(slots) + 1024
    last = 199 * 100  # every busy slot was assigned then; due once its time has passed
    assert ledger.lapsed(last + 5_000) == []  # at the lapse time exactly: not yet
    due = ledger.lapsed(last + 5_001)
    assert sorted(due) == sorted(s for s in slots if s != "s0")
    assert ledger.lapsed(last + 5_001) == due  # asking again changes nothing
    ledger.mark_started("s1", "t199", last + 5_002)
    assert "s1" not in ledger.lapsed(last + 6_000)

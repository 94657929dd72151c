"""Assignments that lapse: the slot leaves or goes silent before it reports task.started."""

from __future__ import annotations

from router.catalog import Catalog
from router.engine import Router, RouterConfig
from router.values import (
    Decision,
    Outcome,
    ReasonCode,
    SlotFree,
    SlotGone,
    SlotHeartbeat,
    Task,
    TaskPending,
    TaskStarted,
)

T0 = 1_000_000
CONFIG = RouterConfig(stale_after_s=10, assignment_timeout_s=30)


def _router(catalog: Catalog) -> Router:
    return Router(catalog, config=CONFIG)


def _batch(router: Router, *events: object, now_ms: int, batch: str) -> list[Decision]:
    router.begin_batch(batch)
    out: list[object] = []
    for i, event in enumerate(events):
        out += router.apply(event, event_id=f"{batch}-{i}", now_ms=now_ms)  # type: ignore[arg-type]
    out += router.expire_assignments(now_ms=now_ms)
    out += router.match(now_ms=now_ms)
    return [d for d in out if isinstance(d, Decision)]


def _assign_a_to_h1(router: Router) -> None:
    task = Task(task_id="a", priority=50, requires={})
    (d,) = _batch(router, SlotFree(slot_id="h1", model="haiku"), TaskPending(task=task), now_ms=T0, batch="1")
    assert d.chosen is not None and d.chosen.slot_id == "h1"


def test_slot_gone_before_start_sends_the_task_back_to_waiting(catalog: Catalog) -> None:
    router = _router(catalog)
    _assign_a_to_h1(router)
    (lapsed,) = _batch(router, SlotGone(slot_id="h1"), now_ms=T0 + 1, batch="2")
    assert (lapsed.outcome, lapsed.reason_code) == (Outcome.AWAIT_SLOT, ReasonCode.ASSIGNMENT_LAPSED)
    assert "slot.gone before starting" in lapsed.reason
    assert "a" in router.waiting and "a" not in router.assigned
    (again,) = _batch(router, SlotFree(slot_id="h2", model="haiku"), now_ms=T0 + 2, batch="3")
    assert again.task.task_id == "a" and again.chosen is not None and again.chosen.slot_id == "h2"


def test_slot_gone_after_start_keeps_the_task_assigned(catalog: Catalog) -> None:
    router = _router(catalog)
    _assign_a_to_h1(router)
    events = (TaskStarted(task_id="a", slot_id="h1"), SlotGone(slot_id="h1"))
    assert _batch(router, *events, now_ms=T0 + 1, batch="2") == []
    assert "a" not in router.waiting and "a" in router.assigned


def test_silent_unstarted_assignment_lapses_after_the_timeout(catalog: Catalog) -> None:
    router = _router(catalog)
    _assign_a_to_h1(router)
    assert _batch(router, now_ms=T0 + 29_000, batch="tick-1") == []  # within the timeout
    (lapsed,) = _batch(router, now_ms=T0 + 31_000, batch="tick-2")
    assert lapsed.reason_code is ReasonCode.ASSIGNMENT_LAPSED
    assert "not heard from for 31s" in lapsed.reason
    assert router.ledger.slots["h1"].state.value == "gone"  # no more work until it says slot.free again


def test_heartbeating_slot_keeps_its_task_without_task_started(catalog: Catalog) -> None:
    """Slots that predate task.started but heartbeat while working are never robbed of their task."""
    router = _router(catalog)
    _assign_a_to_h1(router)
    for second in range(5, 120, 5):
        assert _batch(router, SlotHeartbeat(slot_id="h1"), now_ms=T0 + second * 1000, batch=f"hb{second}") == []
    assert router.ledger.slots["h1"].task_id == "a"


def test_lapsed_task_survives_a_restart_from_the_snapshot(catalog: Catalog) -> None:
    router = _router(catalog)
    _assign_a_to_h1(router)
    changes = router.drain_changes()
    restored = _router(catalog)
    restored.restore(
        slots=list(changes.slots.values()),
        waiting=[w for w in changes.waiting.values() if w is not None],
        assigned={k: v for k, v in changes.assigned.items() if v is not None},
        ev_values=changes.ev_added,
        utilisation={},
    )
    (lapsed,) = _batch(restored, SlotGone(slot_id="h1"), now_ms=T0 + 1, batch="2")
    assert lapsed.task.task_id == "a" and lapsed.reason_code is ReasonCode.ASSIGNMENT_LAPSED


def test_duplicated_slot_free_for_an_earlier_task_does_not_free_a_busy_slot(catalog: Catalog) -> None:
    """A producer's retried XADD can deliver `slot.free` (completed t1) again after the slot took t2."""
    from router.values import Usage

    router = _router(catalog)
    done_a = SlotFree(slot_id="h1", model="haiku", completed=Usage(task_id="a"))
    _assign_a_to_h1(router)
    (second,) = _batch(
        router, done_a, TaskPending(task=Task(task_id="b", priority=40, requires={})), now_ms=T0 + 5, batch="2"
    )
    assert second.task.task_id == "b" and second.chosen is not None and second.chosen.slot_id == "h1"
    assert (
        _batch(router, done_a, TaskPending(task=Task(task_id="c", priority=40, requires={})), now_ms=T0 + 6, batch="3")[
            0
        ].outcome
        is Outcome.AWAIT_SLOT
    )
    assert router.ledger.slots["h1"].task_id == "b"


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

"""The seed's acceptance test (POLICY.md), as plain values: 4 slots, 10 tasks in one batch."""

from __future__ import annotations

import pytest

from router.catalog import Catalog
from router.engine import Router
from router.values import Decision, Outcome, ReasonCode, SlotFree, Task, TaskPending, Verdict

T0 = 1_700_000_000_000
PRIORITIES = [95, 90, 80, 70, 60, 50, 40, 30, 20, 10]


def _pending(i: int) -> TaskPending:
    requires = {"reasoning": 7} if i < 2 else {}
    return TaskPending(task=Task(task_id=f"t{i}", priority=PRIORITIES[i], requires=requires))


@pytest.fixture
def seeded(catalog: Catalog) -> tuple[Router, list[Decision]]:
    router = Router(catalog)
    router.begin_batch("1-0")
    for slot_id, model in (("o1", "opus"), ("s1", "sonnet"), ("h1", "haiku"), ("h2", "haiku")):
        assert router.apply(SlotFree(slot_id=slot_id, model=model), event_id=f"1-{slot_id}", now_ms=T0) == []
    router.begin_batch("2-0")
    for i in range(10):
        assert router.apply(_pending(i), event_id=f"2-{i}", now_ms=T0) == []
    return router, router.match(now_ms=T0)


def _free(router: Router, n: int, slot_id: str, model: str) -> list[Decision]:
    router.begin_batch(f"{n}-0")
    router.apply(SlotFree(slot_id=slot_id, model=model), event_id=f"{n}-0", now_ms=T0 + n)
    return router.match(now_ms=T0 + n)


def test_highest_ev_tasks_go_to_opus_and_sonnet_the_rest_to_haiku(seeded: tuple[Router, list[Decision]]) -> None:
    router, ds = seeded
    placed = {d.task.task_id: d.chosen.slot_id for d in ds if d.chosen is not None}
    assert placed == {"t0": "o1", "t1": "s1", "t2": "h1", "t3": "h2"}
    by_task = {d.task.task_id: d for d in ds}
    assert by_task["t0"].reason_code is ReasonCode.OVERRIDE_HIGHEST_TIER  # EV 0.95 > P90 0.905
    assert by_task["t1"].reason_code is ReasonCode.CHEAPEST_CAPABLE
    assert by_task["t0"].thresholds.p90 == pytest.approx(0.905)
    assert by_task["t0"].thresholds.p50 == pytest.approx(0.55)
    awaiting = [d.task.task_id for d in ds if d.outcome is Outcome.AWAIT_SLOT]
    assert awaiting == ["t4", "t5", "t6", "t7", "t8", "t9"]
    assert all(by_task[t].reason_code is ReasonCode.NO_FREE_CAPABLE_SLOT for t in awaiting)
    assert sorted(router.waiting.tasks) == awaiting


def test_haiku_slots_freeing_up_hand_out_waiting_tasks_in_priority_order(seeded: tuple[Router, list[Decision]]) -> None:
    router, _ = seeded
    order = []
    for n in range(3, 9):
        slot_id = "h1" if n % 2 else "h2"
        (d,) = _free(router, n, slot_id, "haiku")
        assert d.outcome is Outcome.ASSIGNED and d.chosen is not None and d.chosen.slot_id == slot_id
        order.append(d.task.task_id)
    assert order == ["t4", "t5", "t6", "t7", "t8", "t9"]
    assert len(router.waiting) == 0


def test_opus_never_takes_a_task_below_the_median_with_priority_under_90(seeded: tuple[Router, list[Decision]]) -> None:
    router, _ = seeded
    # t4 (EV 0.6 >= P50 0.55) may take opus; t5..t9 (EV < 0.55, priority < 90) may not
    (d,) = _free(router, 3, "o1", "opus")
    assert d.task.task_id == "t4" and d.chosen is not None and d.chosen.model == "opus"
    assert _free(router, 4, "o1", "opus") == []  # freed again: only blocked tasks wait
    assert router.ledger.slots["o1"].state.value == "free"
    assert sorted(router.waiting.tasks) == ["t5", "t6", "t7", "t8", "t9"]
    (d,) = _free(router, 5, "h1", "haiku")
    assert d.task.task_id == "t5" and d.chosen is not None and d.chosen.slot_id == "h1"
    opus = [a for a in d.alternatives if a.model == "opus"]
    assert [a.verdict for a in opus] == [Verdict.PREMIUM_BLOCKED]


def test_no_assignment_in_the_whole_run_gives_opus_a_blocked_task(seeded: tuple[Router, list[Decision]]) -> None:
    router, first = seeded
    every = list(first)
    n = 3
    for slot_id, model in [("o1", "opus"), ("h1", "haiku"), ("o1", "opus"), ("s1", "sonnet"), ("h2", "haiku")] * 3:
        every += _free(router, n, slot_id, model)
        n += 1
    assert len(router.waiting) == 0
    for d in every:
        if d.chosen is not None and d.chosen.model == "opus":
            t = d.thresholds
            assert t.p50 is not None
            assert not (t.ev < t.p50 and d.task.priority < 90), d.task.task_id

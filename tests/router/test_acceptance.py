"""The seed's acceptance test (POLICY.md), as plain values: 4 slots, 10 tasks in one batch."""

from __future__ import annotations

import pytest
from support.router_harness import T0, RouterHarness, decisions, free, pending

from router.catalog import Catalog
from router.values import Decision, Outcome, ReasonCode, TaskPending, Verdict

PRIORITIES = [95, 90, 80, 70, 60, 50, 40, 30, 20, 10]
SLOTS = (("o1", "opus"), ("s1", "sonnet"), ("h1", "haiku"), ("h2", "haiku"))
Seeded = tuple[RouterHarness, list[Decision]]


def _pending(i: int) -> TaskPending:
    return pending(f"t{i}", PRIORITIES[i], {"reasoning": 7} if i < 2 else {})


@pytest.fixture
def seeded(catalog: Catalog) -> Seeded:
    """The four slots free, then the ten tasks, decided in one matching round."""
    h = RouterHarness(catalog)
    assert h.apply(*(free(slot_id, model) for slot_id, model in SLOTS)) == []
    assert h.apply(*(_pending(i) for i in range(10))) == []
    return h, decisions(h.finish())


def _free(h: RouterHarness, n: int, slot_id: str, model: str) -> list[Decision]:
    return decisions(h.batch(free(slot_id, model), now_ms=T0 + n))


def test_highest_ev_tasks_go_to_opus_and_sonnet_the_rest_to_haiku(seeded: Seeded) -> None:
    h, ds = seeded
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
    assert sorted(h.router.waiting.tasks) == awaiting


def test_haiku_slots_freeing_up_hand_out_waiting_tasks_in_priority_order(seeded: Seeded) -> None:
    h, _ = seeded
    order = []
    for n in range(3, 9):
        slot_id = "h1" if n % 2 else "h2"
        (d,) = _free(h, n, slot_id, "haiku")
        assert d.outcome is Outcome.ASSIGNED and d.chosen is not None and d.chosen.slot_id == slot_id
        order.append(d.task.task_id)
    assert order == ["t4", "t5", "t6", "t7", "t8", "t9"]
    assert len(h.router.waiting) == 0


def test_opus_never_takes_a_task_below_the_median_with_priority_under_90(seeded: Seeded) -> None:
    h, _ = seeded
    # t4 (EV 0.6 >= P50 0.55) may take opus; t5..t9 (EV < 0.55, priority < 90) may not
    (d,) = _free(h, 3, "o1", "opus")
    assert d.task.task_id == "t4" and d.chosen is not None and d.chosen.model == "opus"
    assert _free(h, 4, "o1", "opus") == []  # freed again: only blocked tasks wait
    assert h.router.ledger.slots["o1"].state.value == "free"
    assert sorted(h.router.waiting.tasks) == ["t5", "t6", "t7", "t8", "t9"]
    (d,) = _free(h, 5, "h1", "haiku")
    assert d.task.task_id == "t5" and d.chosen is not None and d.chosen.slot_id == "h1"
    opus = [a for a in d.alternatives if a.model == "opus"]
    assert [a.verdict for a in opus] == [Verdict.PREMIUM_BLOCKED]


def test_no_assignment_in_the_whole_run_gives_opus_a_blocked_task(seeded: Seeded) -> None:
    h, first = seeded
    every = list(first)
    n = 3
    for slot_id, model in [("o1", "opus"), ("h1", "haiku"), ("o1", "opus"), ("s1", "sonnet"), ("h2", "haiku")] * 3:
        every += _free(h, n, slot_id, model)
        n += 1
    assert len(h.router.waiting) == 0
    on_opus = [d for d in every if d.chosen is not None and d.chosen.model == "opus"]
    assert on_opus, "the run never assigned opus: nothing was checked"
    for d in on_opus:
        t = d.thresholds
        assert t.p50 is not None
        assert not (t.ev < t.p50 and d.task.priority < 90), d.task.task_id

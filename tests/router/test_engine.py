"""The matching round of router.engine.Router (POLICY.md "On every event"), on plain values."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from support.router_harness import T0, RouterHarness, assigned, decisions, free, pending, waits

from router.catalog import Catalog
from router.engine import Cancelled, Effect, UsageReported
from router.values import (
    Decision,
    Event,
    Outcome,
    QuotaUtilisation,
    ReasonCode,
    SlotGone,
    SlotHeartbeat,
    Task,
    TaskCancelled,
    TaskStarted,
    Usage,
    Verdict,
    task_from_json,
    task_to_json,
)


@pytest.fixture
def h(catalog: Catalog) -> RouterHarness:
    return RouterHarness(catalog)


# -- the matching round -------------------------------------------------------------------------


def test_task_with_a_free_capable_slot_is_assigned_at_once(h: RouterHarness) -> None:
    effects = h.batch(free("h1", "haiku"), pending("a", 50))
    (d,) = decisions(effects)
    assert d.outcome is Outcome.ASSIGNED and d.chosen is not None and d.chosen.slot_id == "h1"
    assert d.event_id == "1-0"  # the slot.free that made the slot available triggered it
    assert "a" in h.router.assigned and len(h.router.waiting) == 0


def test_new_task_does_not_take_a_free_slot_a_better_waiting_task_could_use(h: RouterHarness) -> None:
    assert waits(h.batch(pending("old", 80))) == ["old"]
    effects = h.batch(pending("new", 20), free("h1", "haiku"))
    assert assigned(effects) == [("old", "h1")]
    assert waits(effects) == ["new"]


def test_new_task_takes_a_free_slot_no_waiting_task_can_use(h: RouterHarness) -> None:
    assert waits(h.batch(free("h1", "haiku"), pending("deep", 90, {"reasoning": 7}))) == ["deep"]
    effects = h.batch(pending("light", 10))
    assert assigned(effects) == [("light", "h1")]
    assert "deep" in h.router.waiting


def test_freed_slot_goes_to_the_best_waiting_task_that_may_use_it(h: RouterHarness) -> None:
    h.batch(pending("deep", 70, {"reasoning": 7}), pending("low", 40), pending("mid", 60))
    assert assigned(h.batch(free("h1", "haiku"))) == [("mid", "h1")]
    assert assigned(h.batch(free("h2", "haiku"))) == [("low", "h2")]
    assert assigned(h.batch(free("h3", "haiku"))) == []
    assert assigned(h.batch(free("s1", "sonnet"))) == [("deep", "s1")]
    assert len(h.router.waiting) == 0


def test_matching_order_override_then_priority_then_ev_then_arrival(catalog: Catalog) -> None:
    # POLICY.md's base order, without the refinements (EV points, ageing) the defaults turn on
    h = RouterHarness(catalog, ev_rank_points=0.0, ageing_points_per_service_time=0.0)
    # opus-only tasks with EV 1.0 keep P90 at 1.0, so only the quest priority overrides here
    h.batch(*[pending(f"opus-only-{i}", 50, {"coding": 10}, ev=1.0) for i in range(6)])
    h.batch(
        pending("p50-first", 50, ev=0.5),
        pending("p50-second", 50, ev=0.5),
        pending("p50-high-ev", 50, ev=0.6),
        pending("p70", 70, ev=0.1),
        pending("quest", 10, quest_priority=97, ev=0.1),
    )
    assert h.router.ev_window.p90 == 1.0
    got = []
    for i in range(5):
        got += assigned(h.batch(free(f"s{i}", "sonnet")))
    assert [tid for tid, _ in got] == ["quest", "p70", "p50-high-ev", "p50-first", "p50-second"]


def test_a_batch_fills_every_free_slot_in_matching_order(h: RouterHarness) -> None:
    effects = h.batch(free("h1", "haiku"), free("h2", "haiku"), pending("a", 10), pending("b", 30), pending("c", 20))
    assert assigned(effects) == [("b", "h1"), ("c", "h2")]
    assert waits(effects) == ["a"]


def test_freed_opus_is_not_given_to_a_premium_blocked_task(h: RouterHarness) -> None:
    # window EVs 0.1..0.9: P50 0.5; "low" (0.2, priority 20) is blocked from opus
    h.batch(
        *[pending(f"w{i}", 10 * i, ev=i / 10) for i in range(3, 10)],
        pending("low", 20, ev=0.2),
        pending("x", 10, ev=0.1),
    )
    h.batch(*[free(f"s{i}", "sonnet") for i in range(7)])
    assert sorted(h.router.waiting.tasks) == ["low", "x"]
    assert assigned(h.batch(free("o1", "opus"))) == []
    assert sorted(h.router.waiting.tasks) == ["low", "x"]
    effects = h.batch(free("h1", "haiku"))
    assert assigned(effects) == [("low", "h1")]


def test_premium_only_task_takes_a_freed_opus_whatever_its_ev(h: RouterHarness) -> None:
    h.batch(*[pending(f"w{i}", 80, ev=0.9) for i in range(5)], *[free(f"h{i}", "haiku") for i in range(5)])
    effects = h.batch(pending("hard", 5, {"coding": 10}, ev=0.0), free("o1", "opus"))
    (d,) = decisions(effects)
    assert d.chosen is not None and d.chosen.slot_id == "o1"
    assert d.reason_code is ReasonCode.ONLY_PREMIUM_RATEABLE


def test_await_slot_is_announced_once_not_on_every_re_evaluation(h: RouterHarness) -> None:
    first = h.batch(pending("deep", 50, {"reasoning": 7}))
    (d,) = decisions(first)
    assert d.outcome is Outcome.AWAIT_SLOT and d.reason_code is ReasonCode.NO_FREE_CAPABLE_SLOT
    assert h.router.waiting.tasks["deep"].await_decision_id == d.decision_id
    later = (
        h.batch(free("h1", "haiku"))
        + h.batch(pending("deep", 50, {"reasoning": 7}))
        + h.batch(SlotHeartbeat(slot_id="h1"), pending("other", 10))
        + h.batch(QuotaUtilisation(model="haiku", utilisation=0.5))
    )
    assert [x.task.task_id for x in decisions(later) if x.outcome is Outcome.AWAIT_SLOT] == []
    assert h.router.waiting.tasks["deep"].await_decision_id == d.decision_id


def test_task_placed_in_its_first_round_gets_no_await_decision(h: RouterHarness) -> None:
    effects = h.batch(pending("a", 50), free("h1", "haiku"))
    assert [d.outcome for d in decisions(effects)] == [Outcome.ASSIGNED]


def test_republishing_a_waiting_task_updates_it(h: RouterHarness) -> None:
    h.batch(pending("a", 60), pending("b", 40, title="old"))
    window = len(h.router.ev_window)
    effects = h.batch(pending("b", 90, title="new", fields={"title": "new"}))
    assert decisions(effects) == []  # no second await_slot
    assert len(h.router.ev_window) == window  # the same task is not counted twice in the window
    (d,) = decisions(h.batch(free("h1", "haiku")))
    assert d.task.task_id == "b" and d.task.priority == 90 and d.task.title == "new"
    assert d.task.fields["title"] == "new"


def test_republishing_a_waiting_task_with_new_requirements_moves_it(h: RouterHarness) -> None:
    h.batch(pending("a", 60, {"reasoning": 7}))
    h.batch(pending("a", 60, {}))
    assert assigned(h.batch(free("h1", "haiku"))) == [("a", "h1")]


def test_republishing_a_waiting_task_keeps_its_arrival_order(h: RouterHarness) -> None:
    h.batch(pending("first", 50, ev=0.5), pending("second", 50, ev=0.5))
    h.batch(pending("first", 50, ev=0.5))  # a retry of the first
    assert assigned(h.batch(free("h1", "haiku"))) == [("first", "h1")]


def test_republishing_a_waiting_task_as_unroutable_drops_it(h: RouterHarness) -> None:
    h.batch(pending("a", 60))
    (d,) = decisions(h.batch(pending("a", 60, {"telepathy": 3})))
    assert d.outcome is Outcome.UNROUTABLE and d.reason_code is ReasonCode.NO_CAPABLE_MODEL
    assert "a" not in h.router.waiting
    assert assigned(h.batch(free("h1", "haiku"))) == []


def test_republishing_an_assigned_task_is_ignored(h: RouterHarness) -> None:
    h.batch(free("h1", "haiku"), pending("a", 50))
    assert h.batch(pending("a", 99), free("h2", "haiku")) == []
    assert "a" not in h.router.waiting
    assert h.router.ledger.slots["h2"].state.value == "free"


def test_unroutable_task_is_decided_at_once_and_never_waits(h: RouterHarness) -> None:
    effects = h.batch(free("h1", "haiku"), pending("x", 50, {"telepathy": 1}))
    (d,) = decisions(effects)
    assert d.outcome is Outcome.UNROUTABLE and d.chosen is None
    assert d.event_id == "1-1"
    assert "telepathy 1 (best 0)" in d.reason
    assert [a.verdict for a in d.alternatives] == [Verdict.INCAPABLE]
    assert "x" not in h.router.waiting


def test_cancel_of_a_waiting_task_drops_it(h: RouterHarness) -> None:
    h.batch(pending("a", 50))
    effects = h.batch(TaskCancelled(task_id="a"))
    assert effects == [Cancelled(task_id="a", event_id="2-0", at_ms=T0)]
    assert assigned(h.batch(free("h1", "haiku"))) == []
    assert h.router.ledger.slots["h1"].state.value == "free"


def test_cancel_of_an_assigned_or_unknown_task_does_nothing(h: RouterHarness) -> None:
    h.batch(free("h1", "haiku"), pending("a", 50))
    assert h.batch(TaskCancelled(task_id="a")) == []
    assert h.batch(TaskCancelled(task_id="nobody")) == []
    assert h.router.ledger.slots["h1"].task_id == "a"


def test_slot_free_with_completed_usage_reports_the_decision_id(h: RouterHarness) -> None:
    (d,) = decisions(h.batch(free("h1", "haiku"), pending("a", 50)))
    usage = Usage(task_id="a", input_tokens=100, output_tokens=20, cost_usd=0.01)
    effects = h.batch(free("h1", "haiku", completed=usage))
    (u,) = [e for e in effects if isinstance(e, UsageReported)]
    assert u.decision_id == d.decision_id
    assert (u.usage, u.slot_id, u.model, u.account, u.event_id) == (usage, "h1", "haiku", "default", "2-0")
    assert h.router.ledger.slots["h1"].state.value == "free"


def test_usage_for_a_task_the_slot_no_longer_holds_is_found_in_assigned(h: RouterHarness) -> None:
    (d,) = decisions(h.batch(free("h1", "haiku"), pending("a", 50)))
    h.batch(TaskStarted(task_id="a", slot_id="h1"), SlotGone(slot_id="h1"))  # gone after start: task stays assigned
    effects = h.batch(free("h1", "haiku", completed=Usage(task_id="a")))
    (u,) = [e for e in effects if isinstance(e, UsageReported)]
    assert u.decision_id == d.decision_id


def test_usage_for_an_unknown_task_has_no_decision_id(h: RouterHarness) -> None:
    effects = h.batch(free("h1", "haiku", completed=Usage(task_id="mystery")))
    (u,) = [e for e in effects if isinstance(e, UsageReported)]
    assert u.decision_id is None


def test_gone_slot_gets_no_work_until_it_is_free_again(h: RouterHarness) -> None:
    h.batch(free("h1", "haiku"))
    h.batch(SlotGone(slot_id="h1"))
    effects = h.batch(pending("a", 50))
    assert waits(effects) == ["a"]
    (d,) = decisions(effects)
    assert [a.verdict for a in d.alternatives] == [Verdict.GONE]
    assert h.batch(SlotHeartbeat(slot_id="h1")) == []  # a heartbeat does not bring it back
    assert assigned(h.batch(free("h1", "haiku"))) == [("a", "h1")]


def test_stale_slot_gets_no_work_until_heard_again(catalog: Catalog) -> None:
    h = RouterHarness(catalog, stale_after_s=90.0)
    h.batch(free("h1", "haiku"), now_ms=T0)
    (d,) = decisions(h.batch(pending("a", 50), now_ms=T0 + 90_001))
    assert d.outcome is Outcome.AWAIT_SLOT and d.reason_code is ReasonCode.NO_LIVE_SLOT
    assert assigned(h.batch(SlotHeartbeat(slot_id="h1"), now_ms=T0 + 95_000)) == [("a", "h1")]


def test_task_started_marks_the_slot(h: RouterHarness) -> None:
    h.batch(free("h1", "haiku"), pending("a", 50))
    h.batch(TaskStarted(task_id="other", slot_id="h1"))
    assert h.router.ledger.slots["h1"].started is False
    h.batch(TaskStarted(task_id="a", slot_id="h1"))
    assert h.router.ledger.slots["h1"].started is True


def test_quota_utilisation_steers_between_equal_tier_slots(h: RouterHarness) -> None:
    h.batch(
        QuotaUtilisation(model="haiku", account="acct-a", utilisation=0.8),
        free("a1", "haiku", "acct-a"),
        free("b1", "haiku", "acct-b"),
    )
    assert assigned(h.batch(pending("t", 50))) == [("t", "b1")]


def test_decision_ids_are_unique_per_batch_and_dry_run_is_marked(catalog: Catalog) -> None:
    h = RouterHarness(catalog, dry_run=True)
    effects = h.batch(pending("a", 50), pending("b", 40), free("h1", "haiku"))
    ds = decisions(effects)
    assert [d.decision_id for d in ds] == ["dry:1-3.1", "dry:1-3.2"]
    assert all(d.dry_run for d in ds)
    assert ds[0].to_record()["dry_run"] is True


def test_estimated_cost_uses_the_layer_estimate_and_the_chosen_model_price(h: RouterHarness) -> None:
    (d,) = decisions(h.batch(free("h1", "haiku"), pending("a", 50, layer="chore")))
    assert d.est_cost_usd == pytest.approx((8000 * 1.0 + 1500 * 5.0) / 1e6)
    (d2,) = decisions(h.batch(free("h2", "haiku"), pending("b", 50, est_input_tokens=1_000_000, est_output_tokens=0)))
    assert d2.est_cost_usd == pytest.approx(1.0)


def test_ev_window_size_is_configurable(catalog: Catalog) -> None:
    h = RouterHarness(catalog, ev_window=3)
    h.batch(*[pending(f"t{i}", i * 10) for i in range(1, 6)])
    assert h.router.ev_window.values() == [0.3, 0.4, 0.5]


def test_scorer_gives_the_ev_when_the_task_has_none(catalog: Catalog) -> None:
    h = RouterHarness(catalog, scorer=lambda t: 0.42 if t.task_id == "a" else 0.1)
    h.apply(pending("a", 10), pending("b", 10, ev=0.9))
    (d, _) = decisions(h.finish())
    assert d.thresholds.ev == 0.42
    assert sorted(h.router.ev_window.values()) == [0.42, 0.9]


def test_decision_record_carries_the_numbers(h: RouterHarness) -> None:
    h.batch(*[pending(f"w{i}", 10, ev=i / 10) for i in range(10)])
    (d,) = decisions(h.batch(free("o1", "opus"), pending("hot", 50, ev=0.99, quest_priority=3)))
    rec = d.to_record()
    assert rec["outcome"] == "assigned" and rec["reason_code"] == "override_highest_tier"
    assert rec["chosen_slot_id"] == "o1" and rec["chosen_model"] == "opus" and rec["chosen_tier"] == 3
    assert rec["ev"] == 0.99 and rec["quest_priority"] == 3 and rec["override"] is True
    assert rec["ev_p90"] == pytest.approx(h.router.ev_window.p90)
    only = {"slot_id": "o1", "model": "opus", "account": "default", "tier": 3, "verdict": "chosen"}
    assert rec["alternatives"] == [only]


# -- restart ------------------------------------------------------------------------------------


def _records(effects: list[Effect]) -> list[Any]:
    out: list[Any] = []
    for e in effects:
        out.append(e.to_record() if isinstance(e, Decision) else e)
    return out


def test_drain_changes_then_restore_gives_the_same_subsequent_decisions(catalog: Catalog) -> None:
    live = RouterHarness(catalog, ev_window=6, stale_after_s=60.0, snapshot=True)
    history: list[list[Event]] = [
        [free("h1", "haiku", "acct-a"), free("s1", "sonnet"), free("o1", "opus")],
        [pending(f"t{i}", 10 * i, {"reasoning": 7} if i % 3 == 0 else {}, ev=i / 10) for i in range(1, 10)],
        [QuotaUtilisation(model="haiku", account="acct-b", utilisation=0.3), free("h2", "haiku", "acct-b")],
        [TaskCancelled(task_id="t1"), SlotGone(slot_id="s1"), pending("t4", 95)],
    ]
    for events in history:
        live.advance(1_000)
        live.batch(*events)
    assert not live.router.drain_changes()  # drained into the snapshot: nothing left

    restored = live.restarted()
    assert sorted(restored.router.waiting.tasks) == sorted(live.router.waiting.tasks)
    assert restored.router.ev_window.values() == live.router.ev_window.values()

    future: list[list[Event]] = [
        [free("h1", "haiku", "acct-a", completed=Usage(task_id="t9"))],
        [pending("late", 70), free("c1", "codex"), free("h3", "haiku", "acct-a")],
        [free("o1", "opus"), free("s1", "sonnet"), SlotHeartbeat(slot_id="h2")],
        [pending("t4", 10), free("g1", "glm"), free("m1", "minimax"), free("x1", "gpt-5")],
        [free("h2", "haiku", "acct-b")],
    ]
    compared = 0
    for i, events in enumerate(future):
        now = live.now_ms + 70_000 * (i % 2) + 1_000  # some batches let slots go stale
        expected = live.batch(*events, now_ms=now)
        got = restored.batch(*events, now_ms=now)
        assert _records(got) == _records(expected), f"batch {i}"
        compared += len(decisions(expected))
    assert compared >= 5  # the comparison covered real assignments, not empty batches
    assert sorted(restored.router.waiting.tasks) == sorted(live.router.waiting.tasks)


def test_a_task_assigned_in_the_batch_it_arrived_in_never_touches_the_waiting_snapshot(catalog: Catalog) -> None:
    """Nothing to write for it and nothing to delete: the snapshot never held it. One the snapshot
    does hold, cancelled, published again and assigned in one batch, must be deleted from it."""
    h = RouterHarness(catalog)
    h.batch(free("h1", "haiku"), free("h2", "haiku"), pending("held", 50, {"reasoning": 7}))
    assert list(h.router.drain_changes().waiting) == ["held"]  # waits: the snapshot holds it now

    again = pending("held", 50, {"reasoning": 7})
    effects = h.batch(pending("fresh", 50), TaskCancelled(task_id="held"), again, free("s1", "sonnet"))
    assert sorted(assigned(effects)) == [("fresh", "h1"), ("held", "s1")]
    assert h.router.drain_changes().waiting == {"held": None}


def test_restore_keeps_await_announcements_and_assigned_ids(catalog: Catalog) -> None:
    live = RouterHarness(catalog, snapshot=True)
    live.batch(free("h1", "haiku"), pending("a", 50), pending("b", 40, {"reasoning": 7}))
    restored = live.restarted()
    assert restored.apply(pending("a", 50)) == []  # already assigned
    restored.apply(pending("b", 40, {"reasoning": 7}))
    assert restored.finish() == []  # b already announced its wait


def test_snapshot_task_leaves_out_missing_optional_values_and_reads_them_back() -> None:
    bare = Task(task_id="t", priority=50, requires={"coding": 3}, layer="chore", fields={"task_id": "t", "x": 1})
    full = Task(
        task_id="u",
        priority=90,
        requires={},
        layer="strategy",
        ev=0.7,
        quest_priority=95,
        est_input_tokens=1000,
        est_output_tokens=200,
        title="Ship it",
        submitted_at_ms=T0,
        fields={"task_id": "u"},
    )
    assert None not in task_to_json(bare).values()
    assert sorted(task_to_json(bare)) == ["fields", "layer", "priority", "requires", "task_id"]
    for task in (bare, full):
        assert task_from_json(orjson.loads(orjson.dumps(task_to_json(task)))) == task
    # a snapshot written before the optional values were left out (nulls) reads the same
    with_nulls = {**task_to_json(bare), "ev": None, "title": None, "submitted_at_ms": None}
    assert task_from_json(with_nulls) == bare


# -- matching order refinements ---------------------------------------------------------------


def test_sole_tier_task_goes_first_to_the_only_tier_that_can_serve_it(catalog: Catalog) -> None:
    h = RouterHarness(catalog, sole_tier_first=True)
    h.batch(pending("any", 80, ev=0.8), pending("opus-only", 10, {"coding": 10}, ev=0.8))
    assert assigned(h.batch(free("o1", "opus"))) == [("opus-only", "o1")]


def test_without_sole_tier_first_the_order_is_priority(catalog: Catalog) -> None:
    h = RouterHarness(catalog, sole_tier_first=False)
    h.batch(pending("any", 80, ev=0.8), pending("opus-only", 10, {"coding": 10}, ev=0.8))
    assert assigned(h.batch(free("o1", "opus"))) == [("any", "o1")]

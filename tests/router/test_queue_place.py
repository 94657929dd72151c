"""Queue position and ETA of waiting tasks (PROTOCOL.md v1.1), and the service-rate estimate
they come from, which a restart keeps."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.router_batches import CATALOG, T0, Run, free, pending

from router import policy
from router.engine import Router, RouterConfig
from router.service_rates import ServiceRates
from router.values import Outcome, QueuePlace
from router.waiting import WaitingTask

REQUIRES = [{}, {"reasoning": 7}, {"coding": 10}, {"coding": 9, "reasoning": 9}]


def _brute_positions(router: Router) -> dict[str, int]:
    """Position by definition: 1 + the competing waiting tasks that stand ahead in matching order."""
    p50, p90 = router.ev_window.p50, router.ev_window.p90
    tasks = list(router.waiting.tasks.values())
    standing = {w.task.task_id: router.waiting.standing(w, p90=p90) for w in tasks}

    def may_use(w: WaitingTask) -> frozenset[str]:
        blocked = policy.is_premium_blocked(w.task, ev=w.ev, p50=p50, min_tier=w.min_tier)
        return w.models - router.premium_models if blocked else w.models

    return {
        w.task.task_id: 1
        + sum(1 for o in tasks if o.models & may_use(w) and standing[o.task.task_id] > standing[w.task.task_id])
        for w in tasks
    }


TASKS = st.lists(
    st.tuples(
        st.sampled_from([0, 10, 50, 89, 90, 100]),
        st.sampled_from(range(len(REQUIRES))),
        st.sampled_from([None, 0.1, 0.5, 0.9, 2.0]),
        st.sampled_from([None, None, 95]),
        st.sampled_from([0, 1_000, 30_000]),
    ),
    min_size=1,
    max_size=30,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tasks=TASKS, scored=st.booleans(), sole_tier_first=st.booleans())
def test_positions_count_the_competing_tasks_ahead_in_matching_order(
    tasks: list[tuple[int, int, float | None, int | None, int]], scored: bool, sole_tier_first: bool
) -> None:
    config: dict[str, Any] = {"sole_tier_first": sole_tier_first, "ev_window": 7}
    if not scored:
        config.update(ev_rank_points=0.0, ageing_points_per_service_time=0.0)
    run = Run(**config)
    now = T0
    for i, (priority, req, ev, quest, advance) in enumerate(tasks):
        now += advance
        run.batch(now, pending(f"t{i}", priority, REQUIRES[req], ev=ev, quest_priority=quest))
    expected = _brute_positions(run.router)
    every = run.router.queue_places(now)
    assert {k: p.position for k, p in every.items()} == expected
    for task_id, place in expected.items():
        one = run.router.queue_place(task_id, now)
        assert one is not None and one.position == place


def test_a_task_that_is_not_waiting_has_no_place() -> None:
    run = Run()
    run.batch(T0, free("h1", "haiku"), pending("a"))
    assert run.router.queue_place("a", T0) is None
    assert run.router.queue_place("never-seen", T0) is None
    assert run.router.queue_places(T0) == {}


def test_the_await_decision_carries_the_place_and_no_eta_before_any_task_finished() -> None:
    run = Run()
    run.batch(T0, free("h1", "haiku"), pending("a"))
    (await_b,) = run.batch(T0 + 5, pending("b"))
    assert await_b.outcome is Outcome.AWAIT_SLOT
    assert await_b.queue_place == QueuePlace(position=1, eta_s=None, waiting_since_ms=T0 + 5)


def test_the_eta_is_position_over_the_measured_rate_of_the_models_slots() -> None:
    run = Run()
    run.batch(T0, free("h1", "haiku"), free("h2", "haiku"), pending("a"), pending("b"))
    # both haiku slots finish after 60 s: one service time measured, 60 s per slot turn
    run.batch(T0 + 60_000, free("h1", "haiku", completed="a"), free("h2", "haiku", completed="b"))
    decisions = run.batch(T0 + 60_000, pending("c"), pending("d"), pending("e"))
    assigned = [d.task.task_id for d in decisions if d.outcome is Outcome.ASSIGNED]
    assert assigned == ["c", "d"]
    (await_e,) = [d for d in decisions if d.outcome is Outcome.AWAIT_SLOT]
    assert await_e.queue_place is not None and await_e.queue_place.position == 1
    # two slots, each free once a minute: the first in line waits half a minute
    assert await_e.queue_place.eta_s == pytest.approx(30.0)


def test_service_times_are_a_weighted_mean_per_model() -> None:
    rates = ServiceRates()
    assert rates.mean_ms("haiku") is None and rates.scale_ms(["haiku"]) is None
    rates.observe_service("haiku", 60_000)
    rates.observe_service("haiku", 120_000)
    assert 60_000 < (rates.mean_ms("haiku") or 0) < 120_000
    rates.observe_service("opus", 600_000)
    assert rates.scale_ms(["haiku", "opus", "sonnet"]) == pytest.approx(((rates.mean_ms("haiku") or 0) + 600_000) / 2)
    assert rates.completions_per_s({"opus": 2, "sonnet": 5}) == pytest.approx(2 / 600)


def test_the_correction_learns_that_waits_run_longer_than_estimated() -> None:
    rates = ServiceRates()
    assert rates.correction == 1.0
    for _ in range(200):
        rates.observe_wait(estimated_s=100.0, waited_s=200.0)
    assert rates.correction == pytest.approx(2.0, rel=0.01)
    rates.observe_wait(estimated_s=0.0, waited_s=5.0)  # nothing to learn from
    assert rates.correction == pytest.approx(2.0, rel=0.01)


def test_a_restart_keeps_the_service_rates_from_the_snapshot() -> None:
    run = Run()
    run.batch(T0, free("h1", "haiku"), pending("a"))
    run.batch(T0 + 42_000, free("h1", "haiku", completed="a"))
    fields = run.router.drain_changes().rates
    assert fields["model:haiku"]["mean_ms"] == 42_000.0
    restored = Router(CATALOG, config=RouterConfig())
    restored.restore(slots=[], waiting=[], assigned={}, ev_values=[], utilisation={}, rates=fields)
    assert restored.rates.mean_ms("haiku") == 42_000.0
    assert restored.rates.snapshot() == run.router.rates.snapshot()


def test_unreadable_rate_fields_are_skipped_not_fatal() -> None:
    rates = ServiceRates()
    rates.restore({"model:haiku": {"mean_ms": "nan"}, "model:opus": {}, "eta": {"log_correction": [1]}})
    rates.restore({"model:sonnet": {"mean_ms": 5_000, "samples": 3}})
    assert rates.mean_ms("haiku") is None and rates.mean_ms("opus") is None and rates.correction == 1.0
    assert rates.mean_ms("sonnet") == 5_000.0

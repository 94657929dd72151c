"""The non-override matching order: priority + EV rank points, aged in units of the measured
service time (router/waiting.py order_key), so no setting carries a unit of the workload."""

from __future__ import annotations

import pytest
from support.router_batches import T0, Run, assigned, free, pending

from router.snapshot import waiting_from_json, waiting_to_json


def test_before_any_service_time_is_measured_there_is_no_ageing() -> None:
    run = Run(ageing_points_per_service_time=25.0, ev_rank_points=0.0)
    run.batch(T0, pending("old", 50))
    run.batch(T0 + 10**9, pending("new", 60))  # eleven days later: no unit to age it in yet
    assert assigned(run.batch(T0 + 10**9, free("h1", "haiku"))) == ["new"]


@pytest.mark.parametrize(("service_ms", "first"), [(10_000, "old"), (1_000_000, "new")])
def test_waiting_counts_in_service_times_of_the_tasks_models(service_ms: int, first: str) -> None:
    """K = 1: each mean service time waited is one priority point. `old` (50) waited 110 s more than
    `new` (60): 11 points if a task takes 10 s, 0.11 if it takes 1,000 s."""
    run = Run(ageing_points_per_service_time=1.0, ev_rank_points=0.0)
    now = run.measure_haiku(service_ms, T0)
    run.batch(now, pending("old", 50))
    run.batch(now + 110_000, pending("new", 60))
    assert assigned(run.batch(now + 110_000, free("h1", "haiku"))) == [first]


def test_the_first_measurement_gives_the_tasks_already_waiting_their_scale() -> None:
    run = Run(ageing_points_per_service_time=1.0, ev_rank_points=0.0)
    run.batch(T0, free("m1", "haiku"), pending("measured"))
    run.batch(T0 + 1_000, pending("old", 50))  # waits with no scale
    run.batch(T0 + 50_000, pending("new", 60))
    assert run.router.waiting.tasks["old"].scale_ms is None
    run.batch(T0 + 51_000, free("m1", "haiku", completed="measured"), pending("keeps-m1-busy", 100))
    assert run.router.waiting.tasks["old"].scale_ms == 51_000.0
    assert run.router.drain_changes().waiting["old"]["scale_ms"] == 51_000.0  # the snapshot hears of it
    run.router.waiting.tasks["new"].scale_ms = 51_000.0  # as given
    # 10 points apart by priority, 49 s = 0.96 service times apart by waiting: new still first
    assert assigned(run.batch(T0 + 60_000, free("h1", "haiku"))) == ["new"]


def _timeline(scale: int) -> list[str]:
    """One workload, every time in it multiplied by `scale`: the assignment order."""
    run = Run()  # the defaults
    order: list[str] = []
    now = run.measure_haiku(30_000 * scale, T0)
    for step in range(12):
        now += 7_000 * scale
        order += assigned(run.batch(now, pending(f"t{step}", 10 + (step * 37) % 80, ev=((step * 53) % 100) / 100)))
    for step in range(12):
        now += 5_000 * scale
        order += assigned(run.batch(now, free(f"h{step}", "haiku")))
    return [task_id for task_id in order if task_id.startswith("t")]


def test_the_default_order_is_the_same_on_a_workload_sixty_times_slower() -> None:
    """No setting carries a unit of time: stretch every duration and the order does not change."""
    fast = _timeline(1)
    assert len(fast) == 12 and fast != sorted(fast)  # ageing and priority both shaped it
    assert _timeline(60) == fast


@pytest.mark.parametrize(
    ("points", "expected"), [(50.0, ["p50-high", "p50-mid", "p60"]), (0.0, ["p60", "p50-high", "p50-mid"])]
)
def test_ev_rank_points_let_a_higher_ev_beat_a_higher_priority(points: float, expected: list[str]) -> None:
    run = Run(ageing_points_per_service_time=0.0, ev_rank_points=points)
    # opus-only tasks with EV 2.0 keep P90 at 2.0, so nothing below overrides; EV 0.5 fills the middle
    run.batch(T0, *[pending(f"opus-only-{i}", 50, {"coding": 10}, ev=2.0) for i in range(6)])
    run.batch(T0, *[pending(f"unroutable-{i}", 50, {"telepathy": 1}, ev=0.5) for i in range(12)])
    # ranks when filed: EV 0.0 -> 0 (score 60), 1.0 -> 27/40 (83.75), 0.5 -> 15/42 (67.9)
    run.batch(T0, pending("p60", 60, ev=0.0), pending("p50-high", 50, ev=1.0), pending("p50-mid", 50, ev=0.5))
    assert run.router.ev_window.p90 == 2.0
    got = [task_id for i in range(3) for task_id in assigned(run.batch(T0, free(f"s{i}", "sonnet")))]
    assert got == expected


@pytest.mark.parametrize("blocked", [5, 40])
def test_a_premium_slot_skips_past_any_number_of_premium_blocked_tasks_ahead(blocked: int) -> None:
    """With ageing on, a freed premium slot goes to the first task in aged order that premium may
    serve, however many premium-blocked tasks stand ahead of it (the index looks at only a few
    one by one before it consults its premium list)."""
    run = Run(ageing_points_per_service_time=1.0, ev_rank_points=0.0, sole_tier_first=False)
    now = run.measure_haiku(1_000, T0)
    # blocked: EV 0.1 < P50 0.5, priority < 90; they waited longest, so they lead the aged order
    run.batch(
        now,
        *[pending(f"b{i}", 10, ev=0.1) for i in range(blocked)],
        *[pending(f"fill{i}", 10, {"telepathy": 1}, ev=0.5) for i in range(blocked + 10)],
    )
    run.batch(now + 100_000, pending("A", 50, ev=0.5))  # 50 - 100 points of waiting behind b*
    run.batch(now + 130_000, pending("B", 60, ev=0.5))
    assert run.router.ev_window.p50 == 0.5
    assert assigned(run.batch(now + 131_000, free("o1", "opus"))) == ["A"]


def test_a_waiting_task_keeps_its_scale_and_rank_across_a_restart() -> None:
    run = Run()
    now = run.measure_haiku(20_000, T0)
    run.batch(now, pending("w", 40, ev=0.3))
    w = run.router.waiting.tasks["w"]
    again = waiting_from_json(waiting_to_json(w))
    assert (again.scale_ms, again.ev_rank, again.first_estimate_s) == (w.scale_ms, w.ev_rank, w.first_estimate_s)
    assert again.scale_ms == 20_000.0


def test_equal_tasks_keep_their_arrival_order_while_the_service_time_moves_a_little() -> None:
    """The measured mean moves with every completion; were each task given the mean of the moment it
    started waiting, a later equal task with a slightly larger scale would overtake an earlier one."""
    run = Run()
    now = run.measure_haiku(10_000, T0)  # m1 stays busy
    run.batch(now, free("h2", "haiku"), pending("busy-h2", 100))
    run.batch(now + 15_000, pending("first"))
    run.batch(now + 19_000, free("h2", "haiku", completed="busy-h2"), pending("busy-h2-again", 100))  # 19 s turn
    assert run.router.rates.mean_ms("haiku") > 10_000  # the mean moved up, by less than SCALE_DRIFT
    run.batch(now + 20_000, pending("second"))
    assert assigned(run.batch(now + 21_000, free("h3", "haiku"))) == ["first"]


def test_a_service_time_that_drifts_past_the_bound_gives_the_waiting_tasks_the_new_scale() -> None:
    """Opus-only tasks with no opus slot wait by the only measured mean, haiku's; once it has drifted
    past SCALE_DRIFT, the next such task brings the new scale, and the one waiting gets it too."""
    run = Run()
    now = run.measure_haiku(1_000, T0)
    run.batch(now, free("h2", "haiku"), pending("busy-h2", 100), pending("waits", 50, {"coding": 10}))
    assert run.router.waiting.tasks["waits"].scale_ms == 1_000
    at, held = now, "busy-h2"
    for turn in range(40):  # slow turns pull the mean far past twice the first one
        at += 50_000
        run.batch(at, free("h2", "haiku", completed=held), pending(f"busy-h2-{turn}", 100))
        held = f"busy-h2-{turn}"
    assert run.router.waiting.tasks["waits"].scale_ms == 1_000  # nothing asked for the set's scale yet
    run.batch(at, pending("later", 50, {"coding": 10}))
    scales = {run.router.waiting.tasks[t].scale_ms for t in ("waits", "later")}
    assert len(scales) == 1 and scales.pop() == run.router.rates.overall_scale_ms() > 2_000

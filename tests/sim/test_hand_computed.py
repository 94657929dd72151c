"""Small fixed scenarios whose every figure was worked out by hand."""

from __future__ import annotations

import pytest

from sim.des import simulate
from sim.fleet import Fleet
from sim.metrics import measure, percentile
from sim.policies import make_policy
from tests.sim.conftest import make_fleet, make_task

# haiku: $1 per million input tokens; opus: $5. Every task below uses 1M input tokens, 0 output.


def test_fifo_two_slots_three_tasks(small_fleet: Fleet) -> None:
    # t0 at 0 s and t1 at 10 s take the two slots (opus first: it sorts first and was free as long);
    # t2 at 20 s waits for the first slot to free: t0 ends at 100 s on opus.
    tasks = [make_task(0, at_s=0, run_s=100), make_task(1, at_s=10, run_s=300), make_task(2, at_s=20, run_s=50)]
    outcome = simulate(small_fleet, tasks, make_policy("fifo", small_fleet.catalog))
    by_id = {r.task.task_id: r for r in outcome.records}
    assert [(by_id[t].model, by_id[t].started_ms, by_id[t].finished_ms) for t in ("t0", "t1", "t2")] == [
        ("opus", 0, 100_000),
        ("haiku", 10_000, 310_000),
        ("opus", 100_000, 150_000),
    ]
    m = measure(outcome, small_fleet.catalog)
    assert m.total_usd == 11.0  # opus 5 + haiku 1 + opus 5
    assert m.lower_bound_usd == 3.0  # all three could run on haiku
    assert m.completed == 3
    assert m.makespan_s == 310.0
    assert m.wait_p50_s == 0.0
    assert m.wait_p95_s == pytest.approx(72.0)  # waits 0, 0, 80: 0 + 0.9 x 80


def test_router_keeps_premium_for_the_task_only_it_can_serve(small_fleet: Fleet) -> None:
    # t0 needs coding 9 (only opus); t1 needs nothing. Both arrive at once: t0 -> opus, t1 -> haiku.
    tasks = [
        make_task(0, at_s=0, run_s=100, requires={"coding": 9}, priority=20),
        make_task(1, at_s=0, run_s=100, priority=20),
    ]
    outcome = simulate(small_fleet, tasks, make_policy("router", small_fleet.catalog))
    assert {r.task.task_id: r.model for r in outcome.records} == {"t0": "opus", "t1": "haiku"}
    assert measure(outcome, small_fleet.catalog).total_usd == 6.0


def test_cheapest_waits_for_the_cheapest_model(small_fleet: Fleet) -> None:
    # both tasks can run on haiku; "cheapest" never uses opus, so t1 waits for haiku until 100 s
    tasks = [make_task(0, at_s=0, run_s=100), make_task(1, at_s=0, run_s=100)]
    outcome = simulate(small_fleet, tasks, make_policy("cheapest", small_fleet.catalog))
    by_id = {r.task.task_id: r for r in outcome.records}
    assert (by_id["t1"].model, by_id["t1"].started_ms) == ("haiku", 100_000)
    m = measure(outcome, small_fleet.catalog)
    assert (m.total_usd, m.lower_bound_usd, m.makespan_s) == (2.0, 2.0, 200.0)


def test_fifo_counts_a_capability_violation() -> None:
    fleet = make_fleet([("haiku", 1)])
    tasks = [make_task(0, at_s=0, run_s=10, requires={"coding": 9})]
    m = measure(simulate(fleet, tasks, make_policy("fifo", fleet.catalog)), fleet.catalog)
    assert m.capability_violations == 1


def test_speed_scales_run_time() -> None:
    fleet = make_fleet([("haiku", 1)], speed={"haiku": 2.0})
    outcome = simulate(fleet, [make_task(0, at_s=0, run_s=10)], make_policy("fifo", fleet.catalog))
    assert outcome.records[0].finished_ms == 20_000


def test_premium_low_value_share_by_tokens() -> None:
    # opus runs a low-EV, priority-20 task a cheaper model could do (1M tokens) and an only-opus task
    # (3M tokens): the low-value share is 1 / 4. EVs 0.1, 0.5, 0.9: the median is 0.5.
    fleet = make_fleet([("opus", 1), ("haiku", 1)])
    tasks = [
        make_task(0, at_s=0, run_s=10, priority=20, ev=0.1),
        make_task(1, at_s=0, run_s=10, priority=20, ev=0.9, requires={"coding": 9}, tokens=(3_000_000, 0)),
        make_task(2, at_s=100, run_s=10, priority=20, ev=0.5, tokens=(0, 0)),
    ]
    m = measure(simulate(fleet, tasks, make_policy("premium", fleet.catalog)), fleet.catalog)
    assert m.premium_low_value_share == 0.25
    assert m.premium_only_tasks == 1


def test_percentile_interpolates() -> None:
    assert percentile([1.0, 2.0, 3.0, 4.0], 0.5) == 2.5
    assert percentile([5.0], 0.95) == 5.0

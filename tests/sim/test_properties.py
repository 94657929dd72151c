"""Properties on real trace replays (small slices, so the suite stays fast)."""

from __future__ import annotations

import pytest

from sim.des import simulate
from sim.fleet import load_fleet
from sim.policies import make_policy
from sim.run import scenario_tasks
from sim.workload import TaskMapping
from tests.sim.conftest import make_fleet, make_task


def test_fifo_starts_tasks_in_arrival_order() -> None:
    fleet = load_fleet("2-4-10")
    tasks = scenario_tasks("azure-code", fleet, mapping=TaskMapping(), limit=400)
    outcome = simulate(fleet, tasks, make_policy("fifo", fleet.catalog))
    arrival_order = [t.task_id for t in sorted(tasks, key=lambda t: (t.arrival_ms, t.task_id))]
    assert outcome.start_order == arrival_order


def test_fifo_starts_tasks_in_arrival_order_on_a_hand_made_queue() -> None:
    fleet = make_fleet([("haiku", 1)])
    tasks = [make_task(n, at_s=n, run_s=50) for n in range(5)]
    assert simulate(fleet, tasks, make_policy("fifo", fleet.catalog)).start_order == ["t0", "t1", "t2", "t3", "t4"]


@pytest.mark.parametrize("fleet_name", ["2-4-10", "4-4-4"])
@pytest.mark.parametrize("trace", ["azure-code", "mooncake", "burstgpt1"])
def test_router_never_violates_capabilities(fleet_name: str, trace: str) -> None:
    fleet = load_fleet(fleet_name)
    tasks = scenario_tasks(trace, fleet, mapping=TaskMapping(), limit=300)
    outcome = simulate(fleet, tasks, make_policy("router", fleet.catalog))
    started = [r for r in outcome.records if r.model is not None]
    assert len(started) == len(tasks)
    assert all(fleet.catalog.models[r.model or ""].meets(r.task.requires) for r in started)


def test_every_policy_completes_every_task() -> None:
    fleet = load_fleet("4-4-4")
    tasks = scenario_tasks("azure-conv", fleet, mapping=TaskMapping(), limit=200)
    for name in ("fifo", "fifo-capable", "cheapest", "router", "premium"):
        outcome = simulate(fleet, tasks, make_policy(name, fleet.catalog))
        assert all(r.finished_ms is not None for r in outcome.records), name

"""The reference report (goals as medians over seeds, the bound), the ETA calibration and the oracle."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from router.engine import Router
from sim.des import TaskRecord, simulate
from sim.metrics import Metrics, eta_calibration, measure
from sim.policies import ORACLE, RouterDispatcher, make_policy
from sim.reference import TOP_EV_GOAL, Unit, UnitResult, markdown, pareto_bound, pareto_points, summarise
from tests.sim.conftest import make_fleet, make_task
from worker.cli import main

BLANK = Metrics(
    policy="",
    tasks=100,
    completed=100,
    unroutable=0,
    total_usd=100.0,
    usd_per_task=1.0,
    lower_bound_usd=50.0,
    premium_low_value_share=0.0,
    capability_violations=0,
    wait_p50_s=0.0,
    wait_p95_s=100.0,
    top_decile_wait_p50_s=0.0,
    top_decile_wait_p95_s=100.0,
    premium_only_wait_p50_s=0.0,
    premium_only_wait_p95_s=100.0,
    premium_only_tasks=5,
    makespan_s=1000.0,
)


def _metrics(policy: str, **figures: Any) -> Metrics:
    return replace(BLANK, policy=policy, **figures)


def _run(seed: int, router: Metrics, oracle_top_p95: float, *, fleet: str = "2/4/10") -> UnitResult:
    unit = Unit(load_model="calls", fleet=fleet, trace="mooncake", load=0.75, seed=seed)
    baseline = _metrics("fifo-capable")  # every p95 100 s, cost $100
    oracle = _metrics(ORACLE, top_decile_wait_p95_s=oracle_top_p95)
    return UnitResult(unit=unit, fleet_name=fleet, tasks=100, metrics=(baseline, router, oracle))


def test_goals_are_medians_over_seeds_of_the_ratios_to_fifo_capable() -> None:
    # all-task p95 150, 120, 200 s against 100 s: ratios 1.5, 1.2, 2.0 -> median 1.5 (met: <= 1.5)
    # top-EV p95 10, 30, 50 s: ratios 0.1, 0.3, 0.5 -> 0.3 (missed); cost 90, 110, 95 -> 0.95
    # premium low-value 1%, 3%, 2.5% -> 2.5% (missed); ETA error 0.2, nan, 0.4 -> 0.3
    runs = [
        _run(7, _metrics("router", wait_p95_s=150.0, top_decile_wait_p95_s=10.0, total_usd=90.0,
                         premium_low_value_share=0.01, eta_mape=0.2), 40.0),
        _run(8, _metrics("router", wait_p95_s=120.0, top_decile_wait_p95_s=30.0, total_usd=110.0,
                         premium_low_value_share=0.03), 25.0),
        _run(9, _metrics("router", wait_p95_s=200.0, top_decile_wait_p95_s=50.0, total_usd=95.0,
                         premium_low_value_share=0.025, eta_mape=0.4), 10.0),
    ]  # fmt: skip
    (scenario,) = summarise(runs)
    assert scenario.seeds == (7, 8, 9)
    figures = {g.name: (g.value, g.met) for g in scenario.router_goals}
    assert figures["all-task p95 wait / fifo-capable"] == (1.5, True)
    assert figures[TOP_EV_GOAL] == (pytest.approx(0.3), False)
    assert figures["cost / fifo-capable"] == (0.95, True)
    assert figures["premium low-value share"] == (0.025, False)
    assert figures["premium-only p95 wait / fifo-capable"] == (1.0, True)
    assert scenario.eta_mape == pytest.approx(0.3)
    # the oracle's top-EV p95: 40, 25, 10 s -> ratio median 0.25, over 0.2: the router's miss rests on it
    assert scenario.bound == pytest.approx(0.25)
    assert scenario.rests_on_bound
    report = markdown([scenario], command="router simulate --reference")
    assert "| top-EV p95 (<= 0.2) | 0 / 1 | 1 |" in report
    assert "| all-task p95 (<= 1.5) | 1 / 1 | - |" in report
    # the row: the misses in bold, the bound, router / bound = 0.3 / 0.25, the ETA error
    assert "| **2.5%** | 0 | **0.300** | 1.000 | 1.500 | 0.950 | 0.250 | 1.20 | 30% | 100 / 100 |" in report


def test_a_miss_the_oracle_meets_does_not_rest_on_a_bound() -> None:
    (scenario,) = summarise([_run(7, _metrics("router", top_decile_wait_p95_s=30.0), 10.0)])
    assert scenario.bound == pytest.approx(0.1)
    assert not scenario.rests_on_bound
    assert "| top-EV p95 (<= 0.2) | 0 / 1 | 0 |" in markdown([scenario], command="x")


def test_pareto_points_are_medians_over_scenarios() -> None:
    runs = [
        _run(7, _metrics("router", wait_p95_s=100.0, top_decile_wait_p95_s=10.0), 5.0, fleet="a"),
        _run(7, _metrics("router", wait_p95_s=300.0, top_decile_wait_p95_s=30.0), 5.0, fleet="b"),
    ]
    points = pareto_points(summarise(runs))
    assert points["router"] == (pytest.approx(2.0), pytest.approx(0.2))
    assert ORACLE not in points  # it has no all-task figure: it is drawn as the bound
    assert pareto_bound(summarise(runs)) == pytest.approx(0.05)


def _record(n: int, *, arrival_s: float, started_s: float) -> TaskRecord:
    return TaskRecord(task=make_task(n, at_s=arrival_s, run_s=10), started_ms=round(started_s * 1000))


def test_eta_calibration_by_hand() -> None:
    # waits from the first await: 100 s (ETA 80: 20% off), 200 s (ETA 300: 50%), 120 s (ETA 120: 0%),
    # 50 s (not over 60 s: left out), 500 s with no ETA (left out): median of 0.2, 0.5, 0 = 0.2
    records = [
        _record(0, arrival_s=0, started_s=100),
        _record(1, arrival_s=10, started_s=210),
        _record(2, arrival_s=0, started_s=130),
        _record(3, arrival_s=0, started_s=50),
        _record(4, arrival_s=0, started_s=500),
    ]
    first_eta = {"t0": (0, 80.0), "t1": (10_000, 300.0), "t2": (10_000, 120.0), "t3": (0, 5.0)}
    assert eta_calibration(records, first_eta) == (3, pytest.approx(0.2))
    count, error = eta_calibration(records, {})
    assert count == 0 and math.isnan(error)


def queue_length_eta(router: Router, task_id: str, now_ms: int) -> float:
    """A stand-in ETA: 100 s per waiting task up to this one (the router's own ETA plugs in the same way)."""
    return 100.0 * sum(1 for waiting_id in router.waiting.tasks if waiting_id <= task_id)


def test_the_router_policy_records_the_eta_at_the_first_await() -> None:
    # one haiku slot; t0 starts at 0, t1 and t2 wait: ETAs 100 and 200 s, given at 0 s and never again;
    # t1 starts at 100 s (0% off), t2 at 200 s (0% off)
    fleet = make_fleet([("haiku", 1)])
    policy = RouterDispatcher(fleet.catalog, eta=queue_length_eta)
    tasks = [make_task(n, at_s=0, run_s=100) for n in range(3)]
    outcome = simulate(fleet, tasks, policy)
    assert outcome.first_eta == {"t1": (0, 100.0), "t2": (0, 200.0)}
    m = measure(outcome, fleet.catalog)
    assert (m.eta_tasks, m.eta_mape) == (2, 0.0)


def test_the_router_policy_keeps_the_eta_its_await_decision_carries() -> None:
    # one haiku slot. t0 (0-100 s) is the router's first completion; t1 starts at 100 s; t2 arrives at
    # 110 s and waits for t1 (90 s). Before any completion the router gives no ETA: t1 never waited.
    fleet = make_fleet([("haiku", 1)])
    tasks = [make_task(0, at_s=0, run_s=100), make_task(1, at_s=100, run_s=100), make_task(2, at_s=110, run_s=100)]
    outcome = simulate(fleet, tasks, RouterDispatcher(fleet.catalog))
    assert list(outcome.first_eta) == ["t2"]
    awaited_ms, eta_s = outcome.first_eta["t2"]
    assert awaited_ms == 110_000 and eta_s > 0
    m = measure(outcome, fleet.catalog)
    assert (m.eta_tasks, m.eta_mape) == (1, pytest.approx(abs(eta_s - 90) / 90, abs=1e-4))


def test_the_oracle_starts_the_top_decile_first_on_the_lowest_tier() -> None:
    # One opus and one haiku slot; t0-t9 arrive at 0 s (run 100 s) with EVs 0.1 .. 1.0: the 90th
    # percentile is 0.91, so only t9 is top decile. It starts first, on haiku (the lowest tier) though
    # opus is free too; t0 takes opus. At 100 s t1 and t2 start, in arrival order, haiku's first.
    fleet = make_fleet([("opus", 1), ("haiku", 1)])
    tasks = [make_task(n, at_s=0, run_s=100, ev=(n + 1) / 10) for n in range(10)]
    outcome = simulate(fleet, tasks, make_policy(ORACLE, fleet.catalog, top_ev=0.91))
    assert outcome.start_order[:4] == ["t9", "t0", "t1", "t2"]
    by_id = {r.task.task_id: r for r in outcome.records}
    assert [(by_id[t].model, by_id[t].started_ms) for t in ("t9", "t0", "t1", "t2")] == [
        ("haiku", 0),
        ("opus", 0),
        ("haiku", 100_000),
        ("opus", 100_000),
    ]
    m = measure(outcome, fleet.catalog)
    assert (m.top_decile_wait_p95_s, m.unroutable) == (0.0, 0)


def test_reference_command_writes_the_report_json_and_pareto_plots(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["simulate", "--reference", "--limit", "60", "--trace", "mooncake", "--fleet", "4-4-4", "--seed", "7"]
    args += ["--load", "0.5", "--load", "0.9", "--sweep", "ev_rank_points=0,50", "--out-dir", str(tmp_path)]
    assert main(args) == 0
    doc = json.loads((tmp_path / "simulate-reference.json").read_text())
    scenarios = [(s["load_model"], s["fleet"], s["trace"], s["offered_load"]) for s in doc["scenarios"]]
    assert scenarios == [
        ("sessions", "4/4/4", "mooncake", 0.5),
        ("sessions", "4/4/4", "mooncake", 0.9),
        ("calls", "4/4/4", "mooncake", 0.5),
        ("calls", "4/4/4", "mooncake", 0.9),
    ]
    assert set(doc["scenarios"][0]["goals"]) >= {"router", ORACLE, "router[ev_rank_points=0]"}
    assert "| goal | scenarios met |" in (tmp_path / "simulate-reference.md").read_text()
    for model in ("sessions", "calls"):
        assert (tmp_path / f"simulate-pareto-{model}.png").read_bytes()[:4] == b"\x89PNG"
    assert "[4/4] calls 4/4/4 mooncake load 0.9 seed 7" in capsys.readouterr().out


def test_reference_runs_in_two_processes_give_the_same_figures(tmp_path: Path) -> None:
    base = ["simulate", "--reference", "--limit", "40", "--trace", "azure-code", "--fleet", "2-4-10"]
    base += ["--load", "0.75", "--load-model", "calls", "--seed", "7", "--seed", "8"]
    assert main([*base, "--out-dir", str(tmp_path / "one")]) == 0
    assert main([*base, "--jobs", "2", "--out-dir", str(tmp_path / "two")]) == 0
    one = json.loads((tmp_path / "one" / "simulate-reference.json").read_text())
    two = json.loads((tmp_path / "two" / "simulate-reference.json").read_text())
    assert one == two


@pytest.mark.parametrize(
    ("extra", "problem"),
    [
        (["--policies", "fifo,router"], "--policies must name both"),
        (["--json", "x.json"], "--json and --plot are for single runs"),
    ],
)
def test_reference_refuses_what_it_cannot_report(
    extra: list[str], problem: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["simulate", "--reference", "--limit", "10", "--out-dir", str(tmp_path), *extra]) == 2
    assert problem in capsys.readouterr().err

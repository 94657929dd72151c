"""One scenario: a trace, a fleet, a seed; every policy on the same tasks."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from router.budgets import Budget
from router.engine import RouterConfig
from sim.des import Outcome, simulate
from sim.failures import FailureModel, misrated_truth
from sim.fleet import Fleet
from sim.metrics import Metrics, measure, percentile
from sim.policies import make_policy
from sim.traces import load_trace
from sim.workload import LoadModel, SimTask, TaskMapping


@dataclass(frozen=True, slots=True, kw_only=True)
class PolicySpec:
    """A policy to run: a name from sim.policies.POLICIES, and for "router" variants their settings."""

    name: str
    config: RouterConfig | None = None
    budgets: tuple[Budget, ...] = ()  # the router's alone; the other policies know no budgets

    @property
    def base(self) -> str:
        return "router" if self.name.startswith("router") else self.name


@dataclass(frozen=True, slots=True, kw_only=True)
class ScenarioResult:
    trace: str
    fleet: str
    load_model: str
    seed: int
    offered_load: float
    tasks: int
    metrics: list[Metrics]
    outcomes: list[Outcome]
    failures: FailureSpec | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class FailureSpec:
    """Whether attempts can fail (sim.failures), and the model the catalogue overrates, if any."""

    misrated: str | None = None

    def model(self, fleet: Fleet, seed: int) -> FailureModel:
        truth = fleet.catalog if self.misrated is None else misrated_truth(fleet.catalog, self.misrated)
        return FailureModel(truth=truth, seed=seed)


def scenario_tasks(
    trace: str, fleet: Fleet, *, mapping: LoadModel, limit: int | None, traces_dir: Path | None = None
) -> list[SimTask]:
    arrivals = load_trace(trace, limit=limit, traces_dir=traces_dir)
    return mapping.tasks(arrivals, slot_count=fleet.slot_count, traces_dir=traces_dir)


def run_policies(
    fleet: Fleet, tasks: list[SimTask], policies: Sequence[PolicySpec], failures: FailureModel | None = None
) -> tuple[list[Metrics], list[Outcome]]:
    metrics, outcomes = [], []
    top_ev = percentile([t.ev for t in tasks], 0.9)  # the oracle's hindsight
    for spec in policies:
        dispatcher = make_policy(spec.base, fleet.catalog, config=spec.config, top_ev=top_ev, budgets=spec.budgets)
        dispatcher.name = spec.name
        outcome = simulate(fleet, tasks, dispatcher, failures)
        outcomes.append(outcome)
        metrics.append(measure(outcome, fleet.catalog))
    return metrics, outcomes


def run_scenario(
    trace: str,
    fleet: Fleet,
    policies: Sequence[PolicySpec],
    *,
    mapping: LoadModel | None = None,
    limit: int | None = None,
    traces_dir: Path | None = None,
    failures: FailureSpec | None = None,
) -> ScenarioResult:
    m = mapping or TaskMapping()
    tasks = scenario_tasks(trace, fleet, mapping=m, limit=limit, traces_dir=traces_dir)
    model = None if failures is None else failures.model(fleet, m.seed)
    metrics, outcomes = run_policies(fleet, tasks, policies, model)
    return ScenarioResult(
        trace=trace,
        fleet=fleet.name,
        load_model=m.name,
        seed=m.seed,
        offered_load=m.offered_load,
        tasks=len(tasks),
        metrics=metrics,
        outcomes=outcomes,
        failures=failures,
    )

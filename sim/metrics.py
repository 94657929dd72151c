"""The comparison figures, computed from one policy's task records.

Definitions (docs/simulator.md repeats them):
- cost: each attempt's tokens at the list price of the model it ran on (failed attempts included);
- with a failure model (sim.failures): success rate = tasks whose last attempt succeeded / tasks;
  escalations (retries) per task = attempts that followed a capability (transient) failure / tasks;
  wasted = the cost of failed attempts; $ per successful task = cost / tasks that succeeded;
- lower bound: each task at its cheapest rateable model's price (whatever the fleet's queues);
- premium low-value share: of the tokens run on premium (tier 3) models, the share spent on tasks
  with EV below the run's median EV, priority < 90, and a cheaper rateable model;
- top EV decile: tasks with EV >= the run's 90th percentile; premium-only: no cheaper rateable model;
- waits: start minus arrival, in seconds; makespan: last completion minus first arrival;
- ETA calibration: for tasks that waited over 60 s after their first await, the median of
  |ETA given then - the real wait from then| / the real wait (NaN while the policy gives no ETA).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

from router.catalog import PREMIUM_TIER, Catalog
from router.policy import PREMIUM_BLOCK_PRIORITY
from router.values import Failure
from sim.des import AttemptRecord, Outcome, TaskRecord
from sim.workload import SimTask


@dataclass(frozen=True, slots=True, kw_only=True)
class Metrics:
    policy: str
    tasks: int
    completed: int
    unroutable: int
    total_usd: float
    usd_per_task: float
    lower_bound_usd: float
    premium_low_value_share: float
    capability_violations: int
    wait_p50_s: float
    wait_p95_s: float
    top_decile_wait_p50_s: float
    top_decile_wait_p95_s: float
    premium_only_wait_p50_s: float
    premium_only_wait_p95_s: float
    premium_only_tasks: int
    makespan_s: float
    eta_tasks: int = 0  # tasks the ETA calibration is measured on
    eta_mape: float = math.nan
    succeeded: int = 0
    success_rate: float = math.nan
    escalations_per_task: float = 0.0
    retries_per_task: float = 0.0
    wasted_usd: float = 0.0
    usd_per_success: float = math.nan

    def to_json(self) -> dict[str, float | int | str]:
        return asdict(self)


def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile, q in 0..1; NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    pos = q * (len(ordered) - 1)
    low = math.floor(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def task_cost(catalog: Catalog, model: str, task: SimTask) -> float:
    return catalog.models[model].cost_usd(input_tokens=task.input_tokens, output_tokens=task.output_tokens)


def cheapest_cost(catalog: Catalog, task: SimTask) -> float | None:
    costs = [task_cost(catalog, m.model_id, task) for m in catalog.rateable(task.requires)]
    return min(costs) if costs else None


ETA_MIN_WAIT_S = 60.0  # shorter waits are not what an ETA is for, and a few seconds off is a large percentage


def eta_calibration(records: Sequence[TaskRecord], first_eta: Mapping[str, tuple[int, float]]) -> tuple[int, float]:
    """(tasks measured, median absolute percentage error) of the ETA given at each task's first await.

    Measured on tasks that waited over ETA_MIN_WAIT_S from that await until they started; NaN if none.
    """
    errors = []
    for r in records:
        given = first_eta.get(r.task.task_id)
        if given is None or r.started_ms is None:
            continue
        awaited_ms, eta_s = given
        waited_s = (r.started_ms - awaited_ms) / 1000
        if waited_s > ETA_MIN_WAIT_S:
            errors.append(abs(eta_s - waited_s) / waited_s)
    return len(errors), percentile(errors, 0.5)


def measure(outcome: Outcome, catalog: Catalog) -> Metrics:
    records = outcome.records
    tasks = [r.task for r in records]
    started = [r for r in records if r.model is not None]
    evs = [t.ev for t in tasks]
    median_ev, top_ev = percentile(evs, 0.5), percentile(evs, 0.9)
    total = wasted = 0.0
    escalations = retries = 0
    for r in started:
        for a in r.attempts:
            cost = task_cost(catalog, a.model, r.task)
            total += cost
            if a.failure is not None:
                wasted += cost
        escalations += sum(1 for a in r.attempts[:-1] if a.failure is Failure.CAPABILITY)
        retries += sum(1 for a in r.attempts[:-1] if a.failure is Failure.TRANSIENT)
    succeeded = sum(1 for r in started if r.succeeded)
    lower = sum(c for c in (cheapest_cost(catalog, t) for t in tasks) if c is not None)
    premium_only = [r for r in records if _min_tier(catalog, r.task) == PREMIUM_TIER]
    finished = [r.finished_ms for r in started if r.finished_ms is not None]
    first_arrival = min((t.arrival_ms for t in tasks), default=0)
    eta_tasks, eta_mape = eta_calibration(records, outcome.first_eta)
    return Metrics(
        policy=outcome.policy,
        tasks=len(tasks),
        completed=len(finished),
        unroutable=len(outcome.unroutable),
        total_usd=round(total, 4),
        usd_per_task=round(total / len(started), 6) if started else 0.0,
        lower_bound_usd=round(lower, 4),
        premium_low_value_share=round(_low_value_share(catalog, started, median_ev), 6),
        capability_violations=sum(1 for r in started if not catalog.models[r.model or ""].meets(r.task.requires)),
        wait_p50_s=_wait(started, 0.5),
        wait_p95_s=_wait(started, 0.95),
        top_decile_wait_p50_s=_wait([r for r in started if r.task.ev >= top_ev], 0.5),
        top_decile_wait_p95_s=_wait([r for r in started if r.task.ev >= top_ev], 0.95),
        premium_only_wait_p50_s=_wait([r for r in premium_only if r.model is not None], 0.5),
        premium_only_wait_p95_s=_wait([r for r in premium_only if r.model is not None], 0.95),
        premium_only_tasks=len(premium_only),
        makespan_s=round((max(finished) - first_arrival) / 1000, 1) if finished else 0.0,
        eta_tasks=eta_tasks,
        eta_mape=round(eta_mape, 4) if math.isfinite(eta_mape) else math.nan,
        succeeded=succeeded,
        success_rate=round(succeeded / len(tasks), 6) if tasks else math.nan,
        escalations_per_task=round(escalations / len(tasks), 6) if tasks else 0.0,
        retries_per_task=round(retries / len(tasks), 6) if tasks else 0.0,
        wasted_usd=round(wasted, 4),
        usd_per_success=round(total / succeeded, 6) if succeeded else math.nan,
    )


def _wait(records: Sequence[TaskRecord], q: float) -> float:
    return round(percentile([(r.wait_ms or 0) / 1000 for r in records], q), 1)


def _min_tier(catalog: Catalog, task: SimTask) -> int | None:
    rateable = catalog.rateable(task.requires)
    return rateable[0].tier if rateable else None


def _low_value_share(catalog: Catalog, started: Sequence[TaskRecord], median_ev: float) -> float:
    premium_tokens = low_value = 0
    for r in started:
        if not catalog.models[r.model or ""].is_premium:
            continue
        tokens = r.task.input_tokens + r.task.output_tokens
        premium_tokens += tokens
        min_tier = _min_tier(catalog, r.task)
        cheaper_exists = min_tier is not None and min_tier < PREMIUM_TIER
        if r.task.ev < median_ev and r.task.priority < PREMIUM_BLOCK_PRIORITY and cheaper_exists:
            low_value += tokens
    return low_value / premium_tokens if premium_tokens else 0.0


MISRATED_WINDOW = 500  # the mis-rated model's outcomes within which its failures should have fallen


def misrated_failure_shares(outcome: Outcome, model: str, *, within: int = MISRATED_WINDOW) -> tuple[float, float]:
    """The mis-rated model's share of all failed attempts up to its `within`-th outcome, and after it
    (NaN where there are none): with the quality gate on, the second should be far below the first."""
    attempts = sorted((a for r in outcome.records for a in r.attempts), key=lambda a: a.finished_ms)
    on_model = [a.finished_ms for a in attempts if a.model == model]
    if not on_model:
        return math.nan, math.nan
    cut_ms = on_model[min(within, len(on_model)) - 1]
    before = [a for a in attempts if a.failure is not None and a.finished_ms <= cut_ms]
    after = [a for a in attempts if a.failure is not None and a.finished_ms > cut_ms]
    return _share(before, model), _share(after, model)


def _share(failed: Sequence[AttemptRecord], model: str) -> float:
    return sum(1 for a in failed if a.model == model) / len(failed) if failed else math.nan

"""Budgets in the simulator (`router simulate --budgets FILE`): the report per budget.

Only the router policy is given budgets (the baselines know none). For each budget the report has
the spend per period against its limit (each assignment booked in the UTC period it started in, at
its list price, which is also the router's estimate since the simulated estimates are the real
token counts), the worst period, its overshoot in $ next to the largest single assignment's
estimate under the budget, and what the routing did instead, against the same router run without
budgets: tasks whose first attempt ran on a cheaper tier, and tasks that waited with reason_code
budget_exhausted and for how long.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

from router.budgets import Budget, period_key
from router.catalog import Catalog
from sim.des import Outcome
from sim.metrics import percentile, task_cost

UNBUDGETED = "router[no budgets]"  # the comparison run's policy name


@dataclass(frozen=True, slots=True, kw_only=True)
class BudgetFigures:
    name: str
    period: str
    mode: str
    limit_usd: float
    periods: int  # periods with any spend
    worst_period: str | None
    worst_spend_usd: float
    overshoot_usd: float  # worst spend - limit, 0 when never over
    largest_assignment_usd: float  # the largest single assignment's estimate under the budget
    moved_cheaper: int  # tasks whose first attempt ran on a lower tier than without budgets
    budget_waited: int  # tasks that waited with reason_code budget_exhausted
    budget_wait_p50_s: float
    budget_wait_max_s: float
    never_started: int  # tasks still waiting when the trace ran out (a hard budget spent for good)

    def to_json(self) -> dict[str, object]:
        return asdict(self)


def budget_figures(
    budgets: Sequence[Budget], catalog: Catalog, budgeted: Outcome, unbudgeted: Outcome
) -> list[BudgetFigures]:
    first_tier = _first_tiers(unbudgeted, catalog)
    moved = [
        r.task.task_id
        for r in budgeted.records
        if r.attempts and r.task.task_id in first_tier
        if catalog.models[r.attempts[0].model].tier < first_tier[r.task.task_id]
    ]
    waits_s = [ms / 1000 for ms in budgeted.budget_waits_ms.values()]
    unroutable = set(budgeted.unroutable)
    never_started = sum(1 for r in budgeted.records if not r.attempts and r.task.task_id not in unroutable)
    out = []
    for budget in budgets:
        spend: dict[str, float] = {}
        largest = 0.0
        for r in budgeted.records:
            for a in r.attempts:
                if budget.covers(a.account, a.model):
                    cost = task_cost(catalog, a.model, r.task)
                    key = period_key(budget.period, a.started_ms)
                    spend[key] = spend.get(key, 0.0) + cost
                    largest = max(largest, cost)
        worst = max(spend, key=lambda k: spend[k]) if spend else None
        worst_spend = spend[worst] if worst is not None else 0.0
        out.append(
            BudgetFigures(
                name=budget.name,
                period=budget.period.value,
                mode=budget.mode.value,
                limit_usd=budget.usd,
                periods=len(spend),
                worst_period=worst,
                worst_spend_usd=round(worst_spend, 4),
                overshoot_usd=round(max(0.0, worst_spend - budget.usd), 4),
                largest_assignment_usd=round(largest, 4),
                moved_cheaper=len(moved),
                budget_waited=len(waits_s),
                budget_wait_p50_s=round(percentile(waits_s, 0.5), 1) if waits_s else 0.0,
                budget_wait_max_s=round(max(waits_s), 1) if waits_s else 0.0,
                never_started=never_started,
            )
        )
    return out


def _first_tiers(outcome: Outcome, catalog: Catalog) -> dict[str, int]:
    return {r.task.task_id: catalog.models[r.attempts[0].model].tier for r in outcome.records if r.attempts}


def budgets_text(figures: Sequence[BudgetFigures]) -> str:
    """The per-budget table; the routing columns are the whole run's (every budget together)."""
    lines = [
        "budgets (router only; the other policies ignore them), against the router without budgets:",
        f"{'budget':<18} {'period':<6} {'mode':<4} {'limit $':>9} {'worst period':<12} {'spent $':>9}"
        f" {'over $':>7} {'max est $':>9} {'cheaper':>7} {'waited':>6} {'wait p50 s':>10} {'wait max s':>10}"
        f" {'never ran':>9}",
    ]
    for f in figures:
        lines.append(
            f"{f.name:<18} {f.period:<6} {f.mode:<4} {f.limit_usd:>9.2f} {f.worst_period or '-':<12}"
            f" {f.worst_spend_usd:>9.2f} {f.overshoot_usd:>7.2f} {f.largest_assignment_usd:>9.2f}"
            f" {f.moved_cheaper:>7} {f.budget_waited:>6} {f.budget_wait_p50_s:>10.1f} {f.budget_wait_max_s:>10.1f}"
            f" {f.never_started:>9}"
        )
    return "\n".join(lines)

"""The quality record: what each model achieved on the tasks the router gave it (PROTOCOL.md v1.1).

Every assigned, non-dry-run decision in the window is one task attempt of its model; the outcome
its slot reported (stored with the usage, joined on `decision_id`) says how it went. Grouped by
(model, layer) and by (model, requirement level): attempts, succeeded, failed by kind, unreported
(no outcome: never counted as a success), the success rate over the attempts with an outcome and
its 95% Wilson interval, and $ per successful task: the cost of *every* attempt (actual where the
slot reported it, else the router's estimate), failed ones included, over the successes.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import ColumnElement, Engine, case, func, select

from router.quality import wilson
from store.schema import decisions, usage

Axis = Literal["layer", "level"]
FAILURE_KINDS = ("capability", "transient", "abandoned")


@dataclass(frozen=True, slots=True, kw_only=True)
class QualityRow:
    model: str
    group: str  # the layer, or the requirement level as text
    tasks: int
    succeeded: int
    failed_capability: int
    failed_transient: int
    failed_abandoned: int
    unreported: int
    success_rate: float | None  # succeeded / (succeeded + failed); None with no outcome
    success_low: float | None  # the 95% Wilson interval of success_rate
    success_high: float | None
    cost_usd: float  # every attempt, failed ones included
    usd_per_success: float | None  # None with no success

    @property
    def failed(self) -> int:
        return self.failed_capability + self.failed_transient + self.failed_abandoned

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def quality(engine: Engine, *, axis: Axis, since: datetime, until: datetime | None = None) -> list[QualityRow]:
    """The quality record in [since, until), per (model, layer) or per (model, requirement level)."""
    d, u = decisions.c, usage.c
    group: ColumnElement[Any] = d.layer if axis == "layer" else func.coalesce(d.requirement_level, 0)
    cost = func.coalesce(u.cost_usd, d.est_cost_usd, 0.0)
    query = (
        select(
            d.chosen_model.label("model"),
            group.label("grp"),
            func.count().label("tasks"),
            _count(u.outcome == "succeeded").label("succeeded"),
            *(_count(u.failure == kind).label(f"failed_{kind}") for kind in FAILURE_KINDS),
            _count(u.outcome.is_(None)).label("unreported"),
            func.coalesce(func.sum(cost), 0.0).label("cost_usd"),
        )
        .select_from(decisions.outerjoin(usage, u.decision_id == d.decision_id))
        .where(d.outcome == "assigned", d.chosen_model.is_not(None), d.dry_run.is_(False), d.decided_at >= since)
        .group_by(d.chosen_model, group)
        .order_by(d.chosen_model, group)
    )
    if until is not None:
        query = query.where(d.decided_at < until)
    with engine.connect() as conn:
        return [_row(r) for r in conn.execute(query)]


def _count(condition: ColumnElement[bool]) -> ColumnElement[int]:
    return func.count(case((condition, 1)))


def _row(r: Any) -> QualityRow:
    succeeded = int(r.succeeded)
    failed = int(r.failed_capability) + int(r.failed_transient) + int(r.failed_abandoned)
    judged = succeeded + failed
    low, high = wilson(succeeded, judged) if judged else (None, None)
    cost = float(r.cost_usd)
    return QualityRow(
        model=r.model,
        group=str(r.grp),
        tasks=int(r.tasks),
        succeeded=succeeded,
        failed_capability=int(r.failed_capability),
        failed_transient=int(r.failed_transient),
        failed_abandoned=int(r.failed_abandoned),
        unreported=int(r.unreported),
        success_rate=succeeded / judged if judged else None,
        success_low=low,
        success_high=high,
        cost_usd=cost,
        usd_per_success=cost / succeeded if succeeded else None,
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class Suggestion:
    """A (model, layer) whose success rate is credibly below the minimum: the catalogue rates the
    model higher than it does on that layer's tasks."""

    model: str
    layer: str
    text: str


def suggestions(rows: list[QualityRow], *, min_success: float, min_outcomes: int) -> list[Suggestion]:
    """The quality gate's test (router/quality.py) applied to the stored record, per (model, layer):
    at least `min_outcomes` judged outcomes (succeeded or failed for capability) and the 95%
    interval's upper bound below `min_success`."""
    out = []
    for row in rows:
        judged = row.succeeded + row.failed_capability
        _, high = wilson(row.succeeded, judged)
        if judged >= min_outcomes and high < min_success:
            out.append(
                Suggestion(
                    model=row.model,
                    layer=row.group,
                    text=f"lower {row.model}'s capability ratings for layer {row.group!r}: {row.succeeded}/{judged} "
                    f"succeeded, 95% upper bound {high:.2f} < {min_success:.2f}",
                )
            )
    return out

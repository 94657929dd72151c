"""The reads that `explain`, `router decisions` and the dashboard run, with typed results.

Cost figures say where they come from: `actual` when the slot reported usage for the decision,
`estimate` (the router's `est_cost_usd`) otherwise."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import orjson
from sqlalchemy import Engine, Select, and_, case, func, select

from store.db import to_epoch_ms
from store.schema import decisions, usage

CostBasis = Literal["actual", "estimate", "mixed", "none"]

_JOIN = decisions.outerjoin(usage, usage.c.decision_id == decisions.c.decision_id)
_USAGE_COLUMNS = (
    usage.c.input_tokens.label("actual_input_tokens"),
    usage.c.output_tokens.label("actual_output_tokens"),
    usage.c.cost_usd.label("actual_cost_usd"),
    usage.c.cost_source.label("actual_cost_source"),
    usage.c.reported_at.label("completed_at"),
    usage.c.outcome.label("task_outcome"),
    usage.c.failure.label("task_failure"),
    usage.c.detail.label("task_detail"),
)


@dataclass(frozen=True, slots=True, kw_only=True)
class StoredDecision:
    """One row of `model_routing_decisions` with the usage reported against it, if any."""

    decision_id: str
    task_id: str
    outcome: str
    reason_code: str
    reason: str
    decided_at: datetime
    chosen_slot_id: str | None
    chosen_model: str | None
    chosen_tier: int | None
    account: str | None
    layer: str
    priority: int
    quest_priority: int | None
    title: str | None
    ev: float
    ev_p50: float | None
    ev_p90: float | None
    override: bool
    min_tier: int | None
    est_cost_usd: float | None
    dry_run: bool
    event_id: str | None
    policy_version: str
    alternatives: tuple[dict[str, Any], ...]
    actual_input_tokens: int | None = None
    actual_output_tokens: int | None = None
    actual_cost_usd: float | None = None
    actual_cost_source: str | None = None
    completed_at: datetime | None = None
    # v1.1: the attempt chain, and the outcome the slot reported for this assignment
    attempt: int | None = None
    previous_decision_id: str | None = None
    task_outcome: str | None = None
    task_failure: str | None = None
    task_detail: str | None = None

    @property
    def cost_usd(self) -> float | None:
        """Actual cost where usage was reported, else the estimate."""
        return self.actual_cost_usd if self.actual_cost_usd is not None else self.est_cost_usd

    @property
    def cost_basis(self) -> CostBasis:
        if self.actual_cost_usd is not None:
            return "actual"
        return "estimate" if self.est_cost_usd is not None else "none"

    def to_record(self) -> dict[str, Any]:
        """The decision record of the wire contract (decided_at in epoch ms), plus usage fields."""
        doc = {name: getattr(self, name) for name in self.__dataclass_fields__}
        doc["alternatives"] = list(self.alternatives)
        doc["decided_at"] = to_epoch_ms(self.decided_at)
        doc["completed_at"] = to_epoch_ms(self.completed_at) if self.completed_at else None
        doc["cost_basis"] = self.cost_basis
        return doc


@dataclass(frozen=True, slots=True, kw_only=True)
class MatrixCell:
    """Assigned decisions of one model on one layer within a window, and what they cost."""

    model: str
    layer: str
    decisions: int
    total_usd: float  # actual where reported, else estimate
    usd_per_decision: float
    actual_decisions: int  # how many of them have reported usage
    actual_usd: float
    estimated_usd: float  # the estimate for the ones without reported usage
    basis: CostBasis


def _base() -> Select[Any]:
    return select(*decisions.c, *_USAGE_COLUMNS).select_from(_JOIN)


def decisions_for_task(engine: Engine, task_id: str) -> list[StoredDecision]:
    """Every decision about a task, oldest first."""
    query = _base().where(decisions.c.task_id == task_id).order_by(decisions.c.decided_at, decisions.c.decision_id)
    return _fetch(engine, query)


def list_decisions(
    engine: Engine,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    model: str | None = None,
    layer: str | None = None,
    outcome: str | None = None,
    include_dry_run: bool = True,
    limit: int = 1000,
) -> list[StoredDecision]:
    """Decisions matching every filter given, newest first, at most `limit`."""
    conditions = []
    if since is not None:
        conditions.append(decisions.c.decided_at >= since)
    if until is not None:
        conditions.append(decisions.c.decided_at < until)
    if model is not None:
        conditions.append(decisions.c.chosen_model == model)
    if layer is not None:
        conditions.append(decisions.c.layer == layer)
    if outcome is not None:
        conditions.append(decisions.c.outcome == outcome)
    if not include_dry_run:
        conditions.append(decisions.c.dry_run.is_(False))
    query = _base().where(and_(True, *conditions))
    query = query.order_by(decisions.c.decided_at.desc(), decisions.c.decision_id.desc()).limit(limit)
    return _fetch(engine, query)


def model_layer_matrix(
    engine: Engine, *, since: datetime, until: datetime | None = None, include_dry_run: bool = False
) -> list[MatrixCell]:
    """Assigned decisions in [since, until) grouped by model and layer, with count and cost."""
    actual = usage.c.cost_usd
    estimate_only = case((actual.is_(None), decisions.c.est_cost_usd), else_=None)
    query = (
        select(
            decisions.c.chosen_model,
            decisions.c.layer,
            func.count().label("n"),
            func.count(actual).label("n_actual"),
            func.coalesce(func.sum(actual), 0.0).label("actual_usd"),
            func.coalesce(func.sum(estimate_only), 0.0).label("estimated_usd"),
            func.count(estimate_only).label("n_estimated"),
        )
        .select_from(_JOIN)
        .where(decisions.c.outcome == "assigned", decisions.c.chosen_model.is_not(None))
        .where(decisions.c.decided_at >= since)
        .group_by(decisions.c.chosen_model, decisions.c.layer)
        .order_by(decisions.c.chosen_model, decisions.c.layer)
    )
    if until is not None:
        query = query.where(decisions.c.decided_at < until)
    if not include_dry_run:
        query = query.where(decisions.c.dry_run.is_(False))
    with engine.connect() as conn:
        rows = conn.execute(query).all()
    return [_cell(row) for row in rows]


def _cell(row: Any) -> MatrixCell:
    n, n_actual = int(row.n), int(row.n_actual)
    actual_usd, estimated_usd = float(row.actual_usd), float(row.estimated_usd)
    total = actual_usd + estimated_usd
    basis: CostBasis
    if n_actual == n:
        basis = "actual"
    elif n_actual == 0:
        basis = "estimate" if int(row.n_estimated) else "none"
    else:
        basis = "mixed"
    return MatrixCell(
        model=row.chosen_model,
        layer=row.layer,
        decisions=n,
        total_usd=total,
        usd_per_decision=total / n if n else 0.0,
        actual_decisions=n_actual,
        actual_usd=actual_usd,
        estimated_usd=estimated_usd,
        basis=basis,
    )


def _fetch(engine: Engine, query: Select[Any]) -> list[StoredDecision]:
    with engine.connect() as conn:
        return [_decision(row._mapping) for row in conn.execute(query)]


def _decision(m: Any) -> StoredDecision:
    fields = {name: m[name] for name in StoredDecision.__dataclass_fields__ if name != "alternatives" and name in m}
    alternatives: Sequence[dict[str, Any]] = orjson.loads(m["alternatives_json"] or "[]")
    return StoredDecision(**fields, alternatives=tuple(alternatives))

"""The one aggregate the Routing panel needs, in a single pass over the window's decisions.

It is the store's model x layer matrix plus the sums the panel derives from it (estimates over
every decision, for the premium comparison; premium assignments and how many of them went to
below-median-EV tasks), so that one indexed range scan answers the whole panel."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, case, func, select

from router.catalog import PREMIUM_TIER
from store.schema import decisions, usage

# Usage is reported after its decision (the worker stamps both from its clock), so the join only
# needs usage rows from the window on; that bound lets PostgreSQL read usage through its
# reported_at index instead of hashing the whole table. The margin covers a worker replica whose
# clock runs behind the one that decided.
USAGE_CLOCK_MARGIN = timedelta(hours=1)


@dataclass(frozen=True, slots=True, kw_only=True)
class CellSums:
    """Raw sums for the assigned, non-dry-run decisions of one (model, layer) in the window."""

    model: str
    layer: str
    decisions: int
    actual_decisions: int  # with usage the slot reported, cost known
    actual_usd: float
    estimated_decisions: int  # without reported cost but with an estimate
    estimated_usd: float  # estimates of those without reported cost
    with_estimate: int  # decisions with an estimate at all (reported cost or not)
    estimate_usd_all: float  # sum of estimates over those
    premium: int  # assignments to a premium-tier model
    premium_below_p50: int  # ... of tasks whose EV was under the window's median


def window_sums(engine: Engine, *, since: datetime, until: datetime) -> list[CellSums]:
    d, u = decisions.c, usage.c
    reported = u.cost_usd
    estimate_only = case((reported.is_(None), d.est_cost_usd), else_=None)
    premium = d.chosen_tier >= PREMIUM_TIER
    query = (
        select(
            d.chosen_model,
            d.layer,
            func.count().label("n"),
            func.count(reported).label("n_actual"),
            func.coalesce(func.sum(reported), 0.0).label("actual_usd"),
            func.count(estimate_only).label("n_estimated"),
            func.coalesce(func.sum(estimate_only), 0.0).label("estimated_usd"),
            func.count(d.est_cost_usd).label("n_with_estimate"),
            func.coalesce(func.sum(d.est_cost_usd), 0.0).label("estimate_usd_all"),
            func.count(case((premium, 1), else_=None)).label("n_premium"),
            func.count(case(((premium) & (d.ev < d.ev_p50), 1), else_=None)).label("n_premium_below"),
        )
        .select_from(
            decisions.outerjoin(usage, (u.decision_id == d.decision_id) & (u.reported_at >= since - USAGE_CLOCK_MARGIN))
        )
        .where(
            d.decided_at >= since,
            d.decided_at < until,
            d.outcome == "assigned",
            d.chosen_model.is_not(None),
            d.dry_run.is_(False),
        )
        .group_by(d.chosen_model, d.layer)
    )
    with engine.connect() as conn:
        return [_sums(row) for row in conn.execute(query)]


def ping(engine: Engine) -> None:
    """Raises if the database does not answer."""
    with engine.connect() as conn:
        conn.execute(select(1)).scalar_one()


def _sums(row: Any) -> CellSums:
    return CellSums(
        model=str(row.chosen_model),
        layer=str(row.layer),
        decisions=int(row.n),
        actual_decisions=int(row.n_actual),
        actual_usd=float(row.actual_usd),
        estimated_decisions=int(row.n_estimated),
        estimated_usd=float(row.estimated_usd),
        with_estimate=int(row.n_with_estimate),
        estimate_usd_all=float(row.estimate_usd_all),
        premium=int(row.n_premium),
        premium_below_p50=int(row.n_premium_below),
    )

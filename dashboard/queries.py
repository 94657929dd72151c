"""The one aggregate the Routing panel needs, in one query.

It is the store's model x layer matrix plus the sums the panel derives from it (estimates over
every decision, for the premium comparison; premium assignments and how many of them went to
below-median-EV tasks). The whole hours of the window are read from the hourly rollup the recorder
keeps (`model_routing_hourly`, one row per hour and cell), and only the partial first and last
hours from the decision and usage tables, so the cost grows with the window's hours, not with the
decisions in it. `raw_window_sums` is the same aggregate from the decision and usage tables alone."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, Select, case, func, select, union_all

from router.catalog import PREMIUM_TIER
from store.rollup import hour_of, next_hour
from store.schema import decisions, hourly, usage

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
    """Sums for [since, until): the rollup's whole hours plus the raw partial hours at each end.
    Equal to `raw_window_sums` as long as no usage is reported more than USAGE_CLOCK_MARGIN
    before its decision (the rollup joins usage whenever it was reported; see USAGE_CLOCK_MARGIN)."""
    first, last = next_hour(since), hour_of(until)  # the whole hours are [first, last)
    if first >= last:
        return raw_window_sums(engine, since=since, until=until)
    h = hourly.c
    parts: list[Select[Any]] = [
        select(
            h.chosen_model,
            h.layer,
            h.decisions.label("n"),
            h.actual_decisions.label("n_actual"),
            h.actual_usd,
            h.estimated_decisions.label("n_estimated"),
            h.estimated_usd,
            h.with_estimate.label("n_with_estimate"),
            h.estimate_usd_all,
            h.premium.label("n_premium"),
            h.premium_below_p50.label("n_premium_below"),
        ).where(h.hour >= first, h.hour < last)
    ]
    parts += [_raw(start, end) for start, end in ((since, first), (last, until)) if start < end]
    both = union_all(*parts).subquery()
    c = both.c
    query = select(
        c.chosen_model,
        c.layer,
        func.sum(c.n).label("n"),
        func.sum(c.n_actual).label("n_actual"),
        func.sum(c.actual_usd).label("actual_usd"),
        func.sum(c.n_estimated).label("n_estimated"),
        func.sum(c.estimated_usd).label("estimated_usd"),
        func.sum(c.n_with_estimate).label("n_with_estimate"),
        func.sum(c.estimate_usd_all).label("estimate_usd_all"),
        func.sum(c.n_premium).label("n_premium"),
        func.sum(c.n_premium_below).label("n_premium_below"),
    ).group_by(c.chosen_model, c.layer)
    with engine.connect() as conn:  # one statement, so one snapshot for the rollup and the edges
        return [_sums(row) for row in conn.execute(query)]


def raw_window_sums(engine: Engine, *, since: datetime, until: datetime) -> list[CellSums]:
    """Sums for [since, until) from the decision and usage tables alone: one indexed range scan."""
    with engine.connect() as conn:
        return [_sums(row) for row in conn.execute(_raw(since, until))]


def _raw(since: datetime, until: datetime) -> Select[Any]:
    d, u = decisions.c, usage.c
    reported = u.cost_usd
    estimate_only = case((reported.is_(None), d.est_cost_usd), else_=None)
    premium = d.chosen_tier >= PREMIUM_TIER
    return (
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


def ping(engine: Engine) -> None:
    """Raises if the database does not answer."""
    with engine.connect() as conn:
        conn.execute(select(1)).scalar_one()


def _sums(row: Any) -> CellSums:
    estimated = int(row.n_estimated)
    return CellSums(
        model=str(row.chosen_model),
        layer=str(row.layer),
        decisions=int(row.n),
        actual_decisions=int(row.n_actual),
        actual_usd=float(row.actual_usd),
        estimated_decisions=estimated,
        # The rollup subtracts an estimate when usage arrives: what is left of a cell with no
        # estimated decisions is rounding residue, not money.
        estimated_usd=float(row.estimated_usd) if estimated else 0.0,
        with_estimate=int(row.n_with_estimate),
        estimate_usd_all=float(row.estimate_usd_all),
        premium=int(row.n_premium),
        premium_below_p50=int(row.n_premium_below),
    )

"""The Routing panel's numbers: the model x layer matrix, its totals, the premium share and the
estimated saving against sending every task to the premium tier. Pure: sums and catalogue in."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from dashboard.queries import CellSums
from router.catalog import Catalog

Basis = Literal["actual", "estimate", "mixed", "none"]


@dataclass(slots=True, kw_only=True)
class Cost:
    """Decisions and what they cost: reported usage where there is some, else the estimate."""

    decisions: int = 0
    actual_decisions: int = 0
    actual_usd: float = 0.0
    estimated_decisions: int = 0
    estimated_usd: float = 0.0

    def add(self, other: Cost | CellSums) -> None:
        self.decisions += other.decisions
        self.actual_decisions += other.actual_decisions
        self.actual_usd += other.actual_usd
        self.estimated_decisions += other.estimated_decisions
        self.estimated_usd += other.estimated_usd

    @property
    def total_usd(self) -> float:
        return self.actual_usd + self.estimated_usd

    @property
    def usd_per_decision(self) -> float | None:
        return self.total_usd / self.decisions if self.decisions else None

    @property
    def basis(self) -> Basis:
        if self.decisions and self.actual_decisions == self.decisions:
            return "actual"
        if self.actual_decisions == 0:
            return "estimate" if self.estimated_decisions else "none"
        return "mixed"

    def to_json(self) -> dict[str, Any]:
        return {
            "decisions": self.decisions,
            "total_usd": round(self.total_usd, 6),
            "usd_per_decision": None if self.usd_per_decision is None else round(self.usd_per_decision, 6),
            "basis": self.basis,
            "actual_decisions": self.actual_decisions,
            "actual_usd": round(self.actual_usd, 6),
            "estimated_decisions": self.estimated_decisions,
            "estimated_usd": round(self.estimated_usd, 6),
        }


@dataclass(slots=True, kw_only=True)
class Saving:
    """Estimated cost as routed against the same tasks with every one below the premium tier sent
    to the premium tier instead (tasks already on a premium model count at their own estimate).
    "The premium tier" is its models taken alike, as a pool of equal slots would hand them out: the
    headline is the mean of the per-model figures, which are given too (premium prices differ a
    lot: with the default catalogue GPT-5 costs less than Sonnet, Opus far more)."""

    routed_usd: float = 0.0
    premium_usd_by_model: dict[str, float] = field(default_factory=dict)
    decisions: int = 0
    unpriced_decisions: int = 0  # chosen model no longer in the catalogue

    @property
    def all_premium_usd(self) -> float:
        by = self.premium_usd_by_model
        return sum(by.values()) / len(by) if by else 0.0

    @property
    def saving_usd(self) -> float:
        return self.all_premium_usd - self.routed_usd if self.decisions else 0.0

    @property
    def saving_share(self) -> float | None:
        return self.saving_usd / self.all_premium_usd if self.all_premium_usd > 0 else None

    def to_json(self) -> dict[str, Any]:
        return {
            "routed_usd": round(self.routed_usd, 6),
            "all_premium_usd": round(self.all_premium_usd, 6),
            "saving_usd": round(self.saving_usd, 6),
            "saving_share": None if self.saving_share is None else round(self.saving_share, 6),
            "all_premium_usd_by_model": {m: round(v, 6) for m, v in sorted(self.premium_usd_by_model.items())},
            "decisions": self.decisions,
            "unpriced_decisions": self.unpriced_decisions,
            "method": "estimate",
        }


@dataclass(slots=True, kw_only=True)
class Matrix:
    since: datetime
    until: datetime
    hours: int
    models: list[str]
    layers: list[str]
    tiers: dict[str, int | None]
    cells: dict[tuple[str, str], Cost] = field(default_factory=dict)
    by_model: dict[str, Cost] = field(default_factory=dict)
    by_layer: dict[str, Cost] = field(default_factory=dict)
    total: Cost = field(default_factory=Cost)
    premium: int = 0
    premium_below_p50: int = 0
    saving: Saving = field(default_factory=Saving)

    @property
    def premium_below_share(self) -> float | None:
        return self.premium_below_p50 / self.premium if self.premium else None

    def cell(self, model: str, layer: str) -> Cost | None:
        return self.cells.get((model, layer))

    def to_json(self) -> dict[str, Any]:
        """The documented schema of GET /api/resources/routing-matrix (docs/dashboard.md)."""
        return {
            "window": {
                "hours": self.hours,
                "since": self.since.isoformat(),
                "until": self.until.isoformat(),
            },
            "models": [{"model": m, "tier": self.tiers.get(m)} for m in self.models],
            "layers": list(self.layers),
            "cells": [
                {"model": m, "layer": layer, **cost.to_json()} for (m, layer), cost in sorted(self.cells.items())
            ],
            "totals": {
                "by_model": {m: self.by_model[m].to_json() for m in self.models},
                "by_layer": {layer: self.by_layer[layer].to_json() for layer in self.layers},
                "all": self.total.to_json(),
            },
            "premium": {
                "assignments": self.premium,
                "below_median_ev": self.premium_below_p50,
                "below_median_share": self.premium_below_share,
            },
            "saving_vs_all_premium": self.saving.to_json(),
        }


def build_matrix(sums: Iterable[CellSums], catalog: Catalog, *, since: datetime, until: datetime) -> Matrix:
    rows = list(sums)
    models = _models(catalog, {s.model for s in rows})
    layers = _layers(catalog, {s.layer for s in rows})
    tiers = {m: (catalog.models[m].tier if m in catalog.models else None) for m in models}
    hours = round((until - since).total_seconds() / 3600)
    matrix = Matrix(since=since, until=until, hours=hours, models=models, layers=layers, tiers=tiers)
    matrix.by_model = {m: Cost() for m in models}
    matrix.by_layer = {layer: Cost() for layer in layers}
    for s in rows:
        cost = Cost()
        cost.add(s)
        matrix.cells[(s.model, s.layer)] = cost
        matrix.by_model[s.model].add(s)
        matrix.by_layer[s.layer].add(s)
        matrix.total.add(s)
        matrix.premium += s.premium
        matrix.premium_below_p50 += s.premium_below_p50
        _add_saving(matrix.saving, s, catalog)
    return matrix


def _add_saving(saving: Saving, s: CellSums, catalog: Catalog) -> None:
    """Estimate against estimate. A decision's `est_cost_usd` is its task's tokens (the task's own
    estimate, else the layer default) at the chosen model's prices; the same tokens at a premium
    model's prices are that figure scaled by the ratio of the two models' costs for the layer's
    default token mix. Exact when the task gave no estimate; otherwise it assumes the layer's mix
    of input to output tokens. Decisions without an estimate are priced at the layer defaults."""
    chosen = catalog.models.get(s.model)
    premium = [m for m in catalog.models.values() if m.is_premium]
    if chosen is None:
        saving.unpriced_decisions += s.decisions
        return
    tokens = catalog.estimate(s.layer)
    chosen_default = chosen.cost_usd(input_tokens=tokens.input_tokens, output_tokens=tokens.output_tokens)
    without_estimate = s.decisions - s.with_estimate
    routed = s.estimate_usd_all + without_estimate * chosen_default
    saving.routed_usd += routed
    saving.decisions += s.decisions
    for model in premium:
        if chosen.is_premium:  # already premium: the counterfactual changes nothing for these tasks
            instead = routed
        else:
            premium_default = model.cost_usd(input_tokens=tokens.input_tokens, output_tokens=tokens.output_tokens)
            # A free model's estimates carry no token count to scale: use the layer defaults for all.
            scaled = (
                s.estimate_usd_all * premium_default / chosen_default
                if chosen_default > 0
                else s.with_estimate * premium_default
            )
            instead = scaled + without_estimate * premium_default
        saving.premium_usd_by_model[model.model_id] = saving.premium_usd_by_model.get(model.model_id, 0.0) + instead


def _models(catalog: Catalog, seen: set[str]) -> list[str]:
    """Every catalogue model (cheapest tier first), then any model seen that the catalogue lost."""
    known = sorted(catalog.models.values(), key=lambda m: (m.tier, m.model_id))
    return [m.model_id for m in known] + sorted(seen - set(catalog.models))


def _layers(catalog: Catalog, seen: set[str]) -> list[str]:
    """Layers with decisions in the window, then the catalogue's other layers, each part sorted,
    so that the columns people use come first and an empty layer still has its column."""
    return sorted(seen) + sorted(set(catalog.layers) - seen)

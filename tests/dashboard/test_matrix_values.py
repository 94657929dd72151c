"""The panel's derived numbers from plain sums: no database."""

from __future__ import annotations

from datetime import timedelta

import pytest
from dash_seed import NOW

from dashboard.matrix import build_matrix
from dashboard.queries import CellSums
from router.catalog import load_catalog


def _sums(model: str, layer: str, n: int, **kw: float | int) -> CellSums:
    values: dict[str, float | int] = {
        "actual_decisions": 0,
        "actual_usd": 0.0,
        "estimated_decisions": 0,
        "estimated_usd": 0.0,
        "with_estimate": 0,
        "estimate_usd_all": 0.0,
        "premium": 0,
        "premium_below_p50": 0,
        **kw,
    }
    return CellSums(model=model, layer=layer, decisions=n, **values)  # type: ignore[arg-type]


def _matrix(*sums: CellSums):  # type: ignore[no-untyped-def]
    return build_matrix(list(sums), load_catalog(), since=NOW - timedelta(hours=24), until=NOW)


def test_saving_prices_tasks_without_estimates_at_the_layer_defaults() -> None:
    # chore defaults: 8,000 input and 1,500 output tokens
    saving = _matrix(_sums("haiku", "chore", 2)).saving
    haiku, gpt5, opus = 2 * (0.008 + 0.0075), 2 * (0.01 + 0.015), 2 * (0.04 + 0.0375)
    assert saving.routed_usd == pytest.approx(haiku)
    assert saving.premium_usd_by_model == pytest.approx({"gpt-5": gpt5, "opus": opus})
    assert saving.saving_usd == pytest.approx((gpt5 + opus) / 2 - haiku)


def test_saving_scales_a_recorded_estimate_by_the_price_ratio() -> None:
    # one haiku chore task estimated at twice the layer default's cost: at opus it costs twice opus's
    saving = _matrix(_sums("haiku", "chore", 1, with_estimate=1, estimate_usd_all=0.031)).saving
    assert saving.routed_usd == pytest.approx(0.031)
    assert saving.premium_usd_by_model["opus"] == pytest.approx(2 * 0.0775)


def test_premium_decisions_count_at_their_own_cost_in_the_counterfactual() -> None:
    saving = _matrix(_sums("opus", "design", 3, with_estimate=3, estimate_usd_all=0.9, premium=3)).saving
    assert saving.premium_usd_by_model == pytest.approx({"gpt-5": 0.9, "opus": 0.9})
    assert saving.saving_usd == pytest.approx(0.0)


def test_a_model_missing_from_the_catalogue_keeps_its_row_and_is_left_out_of_the_saving() -> None:
    matrix = _matrix(_sums("retired-model", "chore", 4, with_estimate=4, estimate_usd_all=1.0))
    assert matrix.models[-1] == "retired-model" and matrix.tiers["retired-model"] is None
    assert matrix.by_model["retired-model"].decisions == 4
    assert matrix.saving.unpriced_decisions == 4 and matrix.saving.decisions == 0


def test_premium_share_counts_below_median_premium_assignments() -> None:
    matrix = _matrix(_sums("opus", "design", 4, premium=4, premium_below_p50=1), _sums("haiku", "chore", 10))
    assert (matrix.premium, matrix.premium_below_p50, matrix.premium_below_share) == (4, 1, 0.25)


def test_cost_basis_says_where_the_figure_comes_from() -> None:
    m = _matrix(
        _sums("haiku", "chore", 2, actual_decisions=2, actual_usd=0.1),
        _sums("haiku", "docs", 2, estimated_decisions=2, estimated_usd=0.1),
        _sums("haiku", "review", 2, actual_decisions=1, actual_usd=0.1, estimated_decisions=1, estimated_usd=0.1),
        _sums("haiku", "research", 2),
    )
    assert [m.cells[("haiku", layer)].basis for layer in ("chore", "docs", "review", "research")] == [
        "actual",
        "estimate",
        "mixed",
        "none",
    ]

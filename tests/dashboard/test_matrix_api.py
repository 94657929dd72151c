"""GET /api/resources/routing-matrix against a seeded database, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from dash_seed import HOSTILE_LAYER, NOW, MakeClient, insert, standard_rows
from sqlalchemy import Engine

from router.catalog import load_catalog


@pytest.fixture
def seeded(engine: Engine) -> Engine:
    insert(engine, *standard_rows())
    return engine


def _cells(doc: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(c["model"], c["layer"]): c for c in doc["cells"]}


def test_cells_count_and_cost_assigned_live_decisions_in_the_window(seeded: Engine, make_client: MakeClient) -> None:
    doc = make_client(seeded).get("/api/resources/routing-matrix?hours=24").json()
    cells = _cells(doc)
    assert set(cells) == {("haiku", "chore"), ("sonnet", "design"), ("opus", "strategy"), ("haiku", HOSTILE_LAYER)}
    chore = cells[("haiku", "chore")]
    assert (chore["decisions"], chore["actual_decisions"], chore["estimated_decisions"]) == (3, 1, 2)
    assert chore["total_usd"] == pytest.approx(0.04)
    assert chore["usd_per_decision"] == pytest.approx(0.04 / 3, abs=1e-6)
    assert chore["basis"] == "mixed"
    design = cells[("sonnet", "design")]
    assert (design["decisions"], design["total_usd"], design["basis"]) == (2, pytest.approx(0.8), "actual")
    strategy = cells[("opus", "strategy")]
    assert (strategy["decisions"], strategy["total_usd"], strategy["basis"]) == (2, pytest.approx(1.2), "estimate")


def test_totals_premium_share_and_window(seeded: Engine, make_client: MakeClient) -> None:
    doc = make_client(seeded).get("/api/resources/routing-matrix?hours=24").json()
    assert doc["window"] == {
        "hours": 24,
        "since": (NOW - timedelta(hours=24)).isoformat(),
        "until": NOW.isoformat(),
    }
    by_model = doc["totals"]["by_model"]
    assert (by_model["haiku"]["decisions"], by_model["haiku"]["total_usd"]) == (4, pytest.approx(0.05))
    assert doc["totals"]["all"]["decisions"] == 8
    assert doc["totals"]["all"]["total_usd"] == pytest.approx(2.05)
    assert doc["totals"]["by_layer"]["strategy"]["decisions"] == 2
    assert doc["premium"] == {"assignments": 2, "below_median_ev": 1, "below_median_share": 0.5}
    saving = doc["saving_vs_all_premium"]
    assert saving["decisions"] == 8 and saving["method"] == "estimate"
    assert saving["routed_usd"] == pytest.approx(1.64)  # the estimates: the seeded rows all have one
    by_model = saving["all_premium_usd_by_model"]
    assert set(by_model) == {"opus", "gpt-5"}
    assert saving["all_premium_usd"] == pytest.approx(sum(by_model.values()) / 2, abs=1e-5)
    assert by_model["opus"] > saving["routed_usd"]


def test_models_and_layers_without_decisions_are_listed_with_zeros(seeded: Engine, make_client: MakeClient) -> None:
    doc = make_client(seeded).get("/api/resources/routing-matrix?hours=24").json()
    catalog = load_catalog()
    assert {m["model"] for m in doc["models"]} == set(catalog.models)
    assert doc["models"][0]["tier"] == 1  # cheapest tier first
    assert set(catalog.layers) <= set(doc["layers"])
    assert doc["totals"]["by_model"]["glm"] == {
        "decisions": 0,
        "total_usd": 0.0,
        "usd_per_decision": None,
        "basis": "none",
        "actual_decisions": 0,
        "actual_usd": 0.0,
        "estimated_decisions": 0,
        "estimated_usd": 0.0,
    }
    assert doc["totals"]["by_layer"]["research"]["decisions"] == 0  # only an unroutable decision there
    assert ("glm", "chore") not in _cells(doc)


def test_seven_day_window_takes_older_decisions(seeded: Engine, make_client: MakeClient) -> None:
    doc = make_client(seeded).get("/api/resources/routing-matrix?window=7d").json()
    assert doc["window"]["hours"] == 168
    assert _cells(doc)[("haiku", "chore")]["decisions"] == 4


def test_an_empty_window_has_rows_and_columns_but_no_cells(seeded: Engine, make_client: MakeClient) -> None:
    later = make_client(seeded, now=NOW + timedelta(days=30))
    doc = later.get("/api/resources/routing-matrix?hours=1").json()
    assert doc["cells"] == []
    assert doc["totals"]["all"]["decisions"] == 0
    assert doc["premium"]["below_median_share"] is None
    assert doc["saving_vs_all_premium"]["saving_usd"] == 0
    assert len(doc["models"]) == len(load_catalog().models)


def test_an_empty_database(engine: Engine, make_client: MakeClient) -> None:
    response = make_client(engine).get("/api/resources/routing-matrix")
    assert response.status_code == 200
    assert response.json()["cells"] == []

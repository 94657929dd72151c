"""The matrix read from the hourly rollup plus the raw partial hours equals the matrix read from the
decision and usage tables alone, for windows whose edges fall mid-hour or on the hour."""

from __future__ import annotations

import random
from dataclasses import astuple
from datetime import datetime, timedelta
from typing import Any

import pytest
from dash_seed import NOW, MakeClient, decision_row, insert, usage_for
from sqlalchemy import Engine

from dashboard.queries import CellSums, raw_window_sums, window_sums

MODELS = [("haiku", 1), ("glm", 1), ("sonnet", 2), ("opus", 3), ("retired-model", 2)]
LAYERS = ["chore", "design", "strategy", "docs"]


@pytest.fixture
def seeded(engine: Engine) -> Engine:
    """600 decisions at random seconds over the 9 days before NOW, 60% of the assigned with usage,
    written in batches through the store's writer (as the recorder writes them)."""
    rng = random.Random(42)
    rows, reports = [], []
    for _ in range(600):
        model, tier = rng.choice(MODELS)
        outcome = rng.choices(["assigned", "await_slot"], weights=[9, 1])[0]
        row = decision_row(
            model if outcome == "assigned" else None,
            rng.choice(LAYERS),
            ago=timedelta(seconds=rng.randrange(9 * 24 * 3600)),
            tier=tier if outcome == "assigned" else None,
            est=None if rng.random() < 0.2 else rng.uniform(0.001, 0.4),
            ev=rng.random(),
            p50=None if rng.random() < 0.1 else 0.5,
            outcome=outcome,
            dry_run=rng.random() < 0.05,
        )
        rows.append(row)
        if outcome == "assigned" and rng.random() < 0.6:
            reports.append(usage_for(row, rng.uniform(0.001, 0.5)))
    for start in range(0, len(rows), 100):
        insert(engine, rows[start : start + 100])
    rng.shuffle(reports)
    for start in range(0, len(reports), 50):
        insert(engine, [], reports[start : start + 50])
    return engine


def _keyed(sums: list[CellSums]) -> dict[tuple[str, str], tuple[Any, ...]]:
    return {(s.model, s.layer): astuple(s)[2:] for s in sums}


def _approx(sums: list[CellSums]) -> dict[tuple[str, str], tuple[Any, ...]]:
    return {key: tuple(pytest.approx(v, abs=1e-9) for v in values) for key, values in _keyed(sums).items()}


@pytest.mark.parametrize("hours", [1, 2, 5, 24, 168, 720])
@pytest.mark.parametrize(
    "until",
    [NOW - timedelta(minutes=23, seconds=7), NOW, NOW - timedelta(days=2, minutes=59, seconds=59)],
    ids=["mid-hour", "on-the-hour", "a-second-before-the-hour"],
)
def test_rollup_plus_edges_equals_raw(seeded: Engine, hours: int, until: datetime) -> None:
    since = until - timedelta(hours=hours)
    raw = raw_window_sums(seeded, since=since, until=until)
    assert sum(s.decisions for s in raw) > 0 or hours == 1
    assert _keyed(window_sums(seeded, since=since, until=until)) == _approx(raw)


def test_the_api_reads_through_the_rollup(seeded: Engine, make_client: MakeClient) -> None:
    until = NOW - timedelta(minutes=23, seconds=7)
    doc = make_client(seeded, now=until).get("/api/resources/routing-matrix?window=7d").json()
    raw = {(s.model, s.layer): s for s in raw_window_sums(seeded, since=until - timedelta(days=7), until=until)}
    assert {(c["model"], c["layer"]): c["decisions"] for c in doc["cells"]} == {k: s.decisions for k, s in raw.items()}
    for cell in doc["cells"]:
        expected = raw[(cell["model"], cell["layer"])]
        assert cell["actual_usd"] == pytest.approx(expected.actual_usd, abs=2e-6)
        assert cell["estimated_usd"] == pytest.approx(expected.estimated_usd, abs=2e-6)

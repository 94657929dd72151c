"""The quality view: `GET /api/resources/quality`, the Quality panel of /resources, and the
outcome and gate metrics."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import orjson
import pytest
import redis
from dash_seed import NOW, MakeClient, decision_row, insert, usage_for
from sqlalchemy import Engine

from streams.keys import Keys

pytestmark = pytest.mark.integration


def quality_rows(now: Any = NOW) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """haiku/docs: 4 attempts, 2 succeeded ($0.02 each reported), 1 capability failure ($0.04),
    1 unreported ($0.01 estimated): 2/3 = 66.7%, $0.09 / 2 = $0.045 per success.
    sonnet/docs: 1 attempt, succeeded at $0.30."""
    h = timedelta(hours=1)
    haiku = [decision_row("haiku", "docs", ago=h * i, tier=1, now=now) for i in (1, 2, 3, 4)]
    sonnet = [decision_row("sonnet", "docs", ago=h, tier=2, now=now)]
    outcomes = [("succeeded", None, 0.02), ("succeeded", None, 0.02), ("failed", "capability", 0.04)]
    usages = [
        usage_for(row, cost) | {"outcome": outcome, "failure": failure, "outcome_effect": "none", "attempt": 1}
        for row, (outcome, failure, cost) in zip(haiku, outcomes, strict=False)
    ]
    usages.append(usage_for(sonnet[0], 0.3) | {"outcome": "succeeded", "outcome_effect": "none", "attempt": 2})
    return [*haiku, *sonnet], usages


def test_quality_api_gives_the_hand_computed_figures(engine: Engine, make_client: MakeClient) -> None:
    insert(engine, *quality_rows())
    doc = make_client(engine).get("/api/resources/quality?hours=24").json()
    rows = {(r["model"], r["layer"]): r for r in doc["by_layer"]}
    haiku = rows[("haiku", "docs")]
    assert (haiku["tasks"], haiku["succeeded"], haiku["failed_capability"], haiku["unreported"]) == (4, 2, 1, 1)
    assert haiku["success_rate"] == pytest.approx(2 / 3)
    assert haiku["usd_per_success"] == pytest.approx(0.045)
    # Wilson, 2 of 3, z = 1.96: by hand 0.2077 .. 0.9385
    assert haiku["success_low"] == pytest.approx(0.2077, abs=1e-4)
    assert haiku["success_high"] == pytest.approx(0.9385, abs=1e-4)
    assert rows[("sonnet", "docs")]["usd_per_success"] == pytest.approx(0.3)


@pytest.mark.parametrize("query", ["hours=0", "hours=abc", "hours=99999", "hours=1&window=1h"])
def test_quality_api_refuses_bad_params_with_json(engine: Engine, make_client: MakeClient, query: str) -> None:
    response = make_client(engine).get(f"/api/resources/quality?{query}")
    assert response.status_code == 400
    assert "error" in response.json()


def test_resources_page_has_the_quality_panel(engine: Engine, make_client: MakeClient) -> None:
    insert(engine, *quality_rows())
    html = make_client(engine).get("/resources?window=24h").text
    assert 'id="quality-table"' in html
    assert "66.7%" in html and "$0.0450" in html


def test_outcome_metrics_count_the_usage_stream(
    engine: Engine, make_client: MakeClient, r: redis.Redis, prefix: str
) -> None:
    keys = Keys(prefix)
    client = make_client(engine)
    client.get("/metrics")
    for outcome, failure in (("succeeded", None), ("failed", "capability"), (None, None)):
        doc: dict[str, Any] = {"model": "haiku", "task_id": "t", "slot_id": "h1", "event_id": "1-0", "at": 1}
        if outcome:
            doc.update(outcome=outcome, failure=failure, layer="docs", outcome_effect="none")
        r.xadd(keys.usage, {"data": orjson.dumps(doc)})
    # the gate's state as a worker leaves it: 40 capability failures in a row
    r.hset(keys.state(dry_run=False).quality, "haiku\x1fdocs", "0" * 40)
    text = client.get("/metrics").text
    assert 'router_task_outcomes_total{layer="docs",model="haiku",outcome="succeeded"} 1.0' in text
    assert 'router_task_outcomes_total{layer="docs",model="haiku",outcome="failed_capability"} 1.0' in text
    assert 'router_task_outcomes_total{layer="unknown",model="haiku",outcome="unreported"} 1.0' in text
    assert 'router_quality_gate_low_success{layer="docs",model="haiku"} 1.0' in text

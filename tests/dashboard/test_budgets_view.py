"""Budgets on the dashboard: the /resources table, GET /api/resources/budgets and the /metrics gauges,
read from the spend a live worker booked in Redis."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families
from redis.backoff import NoBackoff
from redis.retry import Retry
from sqlalchemy import Engine
from starlette.testclient import TestClient

from dashboard.app import create_app
from router.budgets import Budget, BudgetMode, Period
from router.catalog import load_catalog
from streams.codec import encode
from streams.keys import Keys
from worker.routing import RoutingWorker
from worker.settings import Settings

pytestmark = pytest.mark.integration

NOW = datetime(2026, 12, 8, 12, 0, tzinfo=UTC)
BUDGETS = (
    Budget(name="premium-daily", period=Period.DAY, usd=0.5, mode=BudgetMode.SOFT, models=frozenset({"opus"})),
    Budget(name="acct-b-month", period=Period.MONTH, usd=100.0, mode=BudgetMode.HARD, account="acct-b"),
)


@pytest.fixture
def engine(sqlite_engine: Engine) -> Engine:
    return sqlite_engine


@pytest.fixture
def booked(redis_url: str, prefix: str, r: redis.Redis, tmp_path: Path) -> Keys:
    """A worker (clock at NOW) assigns two tasks to opus: $0.40 booked on premium-daily."""
    path = tmp_path / "budgets.toml"
    path.write_text('[[budget]]\nname = "premium-daily"\nperiod = "day"\nusd = 0.5\nmodels = ["opus"]\n')
    keys = Keys(prefix)
    settings = Settings(redis_url=redis_url, prefix=prefix, block_ms=50, consumer="w", budgets_path=str(path))
    worker = RoutingWorker(settings, r, catalog=load_catalog(), clock=NOW.timestamp)
    for doc in (
        {"type": "slot.free", "slot_id": "o1", "model": "opus"},
        {"type": "slot.free", "slot_id": "o2", "model": "opus"},
        {"type": "task.pending", "task_id": "t1", "priority": 95, "requires": {}},
        {"type": "task.pending", "task_id": "t2", "priority": 95, "requires": {}},
    ):
        r.xadd(keys.events, {"data": encode(doc)})
    for _ in range(20):
        worker.step()
        if r.hget(keys.state(dry_run=False).budgets, "premium-daily"):
            break
    return keys


def client(engine: Engine, r: redis.Redis, prefix: str) -> TestClient:
    return TestClient(
        create_app(engine=engine, r=r, catalog=load_catalog(), prefix=prefix, clock=NOW.timestamp, budgets=BUDGETS)
    )


def test_the_api_lists_every_budget_with_spend_limit_and_projection(
    engine: Engine, r: redis.Redis, prefix: str, booked: Keys
) -> None:
    response = client(engine, r, prefix).get("/api/resources/budgets")
    assert response.status_code == 200
    month, day = response.json()["budgets"]
    assert day == {
        "name": "premium-daily",
        "period": "day",
        "period_key": "2026-12-08",
        "mode": "soft",
        "account": None,
        "models": ["opus"],
        "limit_usd": 0.5,
        "spent_usd": pytest.approx(0.4),
        "spent_share": pytest.approx(0.8),
        "projected_usd": pytest.approx(0.8),  # half the day gone
        "exhausted": False,
    }
    assert (month["name"], month["spent_usd"], month["account"]) == ("acct-b-month", 0.0, "acct-b")


def test_the_page_shows_the_budget_table(engine: Engine, r: redis.Redis, prefix: str, booked: Keys) -> None:
    page = client(engine, r, prefix).get("/resources")
    assert page.status_code == 200
    table = page.text[page.text.index('<table id="budgets">') :]
    table = table[: table.index("</table>")]
    assert "premium-daily" in table and "$0.40" in table and "$0.50" in table and "80.0%" in table
    assert "acct-b-month" in table and "acct-b · every model" in table and "hard" in table


def test_metrics_carry_spent_and_limit_per_budget(engine: Engine, r: redis.Redis, prefix: str, booked: Keys) -> None:
    text = client(engine, r, prefix).get("/metrics").text
    samples = {
        (s.name, s.labels.get("budget")): s.value for f in text_string_to_metric_families(text) for s in f.samples
    }
    assert samples[("router_budget_spent_usd", "premium-daily")] == pytest.approx(0.4)
    assert samples[("router_budget_limit_usd", "premium-daily")] == 0.5
    assert samples[("router_budget_limit_usd", "acct-b-month")] == 100.0


def test_an_unreadable_spend_entry_counts_as_nothing_spent(
    engine: Engine, r: redis.Redis, prefix: str, booked: Keys
) -> None:
    r.hset(booked.state(dry_run=False).budgets, "premium-daily", b"\xff not json")
    response = client(engine, r, prefix).get("/api/resources/budgets")
    assert response.status_code == 200 and response.json()["budgets"][1]["spent_usd"] == 0.0


def test_without_redis_the_api_is_503_and_the_page_says_so(engine: Engine) -> None:
    dead = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=1, retry=Retry(NoBackoff(), 0))
    app = create_app(engine=engine, r=dead, catalog=load_catalog(), clock=NOW.timestamp, budgets=BUDGETS)
    web = TestClient(app)
    response = web.get("/api/resources/budgets")
    assert response.status_code == 503 and "Redis does not answer" in orjson.loads(response.content)["error"]
    assert "budget spend is unknown right now" in web.get("/resources").text


def test_without_budgets_the_page_has_no_budget_table(engine: Engine, r: redis.Redis, prefix: str) -> None:
    web = TestClient(create_app(engine=engine, r=r, catalog=load_catalog(), prefix=prefix, clock=NOW.timestamp))
    assert 'id="budgets"' not in web.get("/resources").text
    assert web.get("/api/resources/budgets").json() == {"budgets": []}

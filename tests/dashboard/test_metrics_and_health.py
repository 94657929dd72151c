"""/metrics parses and moves when a real RoutingWorker routes; /healthz reports both backends."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import orjson
import pytest
import redis
from dash_seed import MakeClient
from prometheus_client.parser import text_string_to_metric_families
from redis.backoff import NoBackoff
from redis.retry import Retry
from sqlalchemy import Engine, create_engine
from starlette.testclient import TestClient
from support.processes import wait_for

from streams.keys import RECORDER_GROUP, Keys
from worker.routing import RoutingWorker
from worker.settings import Settings
from worker.signals import StopFlag

pytestmark = pytest.mark.integration

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@pytest.fixture
def worker(redis_url: str, prefix: str) -> Iterator[RoutingWorker]:
    settings = Settings(redis_url=redis_url, prefix=prefix, block_ms=50, lease_ttl_ms=2000, consumer="dash-w")
    stop = StopFlag()
    routing = RoutingWorker(settings, redis.Redis.from_url(redis_url, socket_timeout=10), stop=stop)
    thread = threading.Thread(target=routing.run, name="routing-worker", daemon=True)
    thread.start()
    yield routing
    stop.stop()
    thread.join(timeout=10)
    assert not thread.is_alive()


def scrape(client: TestClient) -> Samples:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def publish(r: redis.Redis, keys: Keys, *docs: dict[str, object]) -> None:
    for doc in docs:
        r.xadd(keys.events, {"data": orjson.dumps(doc)})


def test_counters_and_gauges_move_when_the_worker_routes(
    sqlite_engine: Engine, make_client: MakeClient, r: redis.Redis, prefix: str, worker: RoutingWorker
) -> None:
    keys = Keys(prefix)
    client = make_client(sqlite_engine)
    before = scrape(client)
    assigned = {"model": "haiku", "layer": "chore", "outcome": "assigned", "dry_run": "false"}
    assert value(before, "router_decisions_total", **assigned) == 0
    assert value(before, "router_redis_up") == 1

    publish(
        r,
        keys,
        {"type": "slot.free", "slot_id": "h1", "model": "haiku"},
        {"type": "task.pending", "task_id": "a", "priority": 50, "requires": {}, "layer": "chore"},
        {"type": "task.pending", "task_id": "b", "priority": 40, "requires": {}, "layer": "chore"},
    )
    r.xadd(keys.events, {"data": b"{not json"})
    waiting = {"model": "none", "layer": "chore", "outcome": "await_slot", "dry_run": "false"}
    after = wait_for(
        lambda: (s := scrape(client)) and value(s, "router_decisions_total", **waiting) == 1 and s,
        what="both decisions on /metrics",
    )
    assert value(after, "router_decisions_total", **assigned) == 1
    assert value(after, "router_decision_latency_seconds_count") == 2
    assert value(after, "router_decision_latency_seconds_bucket", le="+Inf") == 2
    assert value(after, "router_awaiting_tasks") == 1
    assert value(after, "router_slots", model="haiku", state="busy") == 1
    wait_for(lambda: value(scrape(client), "router_dead_letters") == 1, what="the dead letter on /metrics")


def test_a_decision_entry_metrics_cannot_read_is_counted_once_as_unreadable(
    sqlite_engine: Engine, make_client: MakeClient, r: redis.Redis, prefix: str
) -> None:
    """Entries written by hand: an entry id of other scripts' digits or of hundreds of digits (no
    latency), an outcome outside the protocol; none may fail the scrape, or be counted twice."""
    keys = Keys(prefix)
    client = make_client(sqlite_engine)
    scrape(client)  # starts at the tail
    good = {"outcome": "assigned", "chosen_model": "haiku", "layer": "chore", "decided_at": 1_700_000_000_500}
    for doc in (
        {**good, "event_id": "\u00b2-0"},
        {**good, "event_id": "9" * 400 + "-0"},
        {**good, "outcome": {"a": 1}},
        {**good, "event_id": "1700000000000-0"},
    ):
        r.xadd(keys.decisions, {"data": orjson.dumps(doc)})
    first, second = scrape(client), scrape(client)
    assigned = {"model": "haiku", "layer": "chore", "outcome": "assigned", "dry_run": "false"}
    for samples in (first, second):
        assert value(samples, "router_decisions_total", **assigned) == 3
        assert value(samples, "router_dashboard_unreadable_decisions_total") == 1
        assert value(samples, "router_decision_latency_seconds_count") == 1  # only the readable entry id
        assert value(samples, "router_decision_latency_seconds_sum") == 0.5


def test_recorder_lag_and_pending_come_from_the_recorder_group(
    sqlite_engine: Engine, make_client: MakeClient, r: redis.Redis, prefix: str
) -> None:
    keys = Keys(prefix)
    client = make_client(sqlite_engine)
    assert value(scrape(client), "router_recorder_lag_entries", stream="decisions") == 0  # no group: no series
    for i in range(3):
        r.xadd(keys.decisions, {"data": orjson.dumps({"decision_id": str(i), "outcome": "assigned"})})
    r.xgroup_create(keys.decisions, RECORDER_GROUP, id="0")
    r.xreadgroup(RECORDER_GROUP, "rec", {keys.decisions: ">"}, count=1)  # one delivered, not acked
    samples = scrape(client)
    assert value(samples, "router_recorder_lag_entries", stream="decisions") == 2
    assert value(samples, "router_recorder_pending_entries", stream="decisions") == 1
    # counted from the tail at start: these three arrived after the app started
    assert (
        value(samples, "router_decisions_total", model="none", layer="unknown", outcome="assigned", dry_run="false")
        == 3
    )


def test_healthz_is_200_when_both_answer(sqlite_engine: Engine, make_client: MakeClient) -> None:
    response = make_client(sqlite_engine).get("/healthz")
    assert (response.status_code, response.json()) == (200, {"ok": True, "redis": True, "database": True})


def test_healthz_is_503_when_the_database_does_not_answer(make_client: MakeClient) -> None:
    dead_db = create_engine("postgresql+psycopg://nobody@127.0.0.1:1/none", connect_args={"connect_timeout": 1})
    response = make_client(dead_db).get("/healthz")
    assert (response.status_code, response.json()) == (503, {"ok": False, "redis": True, "database": False})
    assert make_client(dead_db).get("/api/resources/routing-matrix").status_code == 503


def test_healthz_and_metrics_when_redis_does_not_answer(sqlite_engine: Engine) -> None:
    from dashboard.app import create_app
    from router.catalog import load_catalog

    dead_redis = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=1, retry=Retry(NoBackoff(), 0))
    client = TestClient(create_app(engine=sqlite_engine, r=dead_redis, catalog=load_catalog()))
    response = client.get("/healthz")
    assert (response.status_code, response.json()) == (503, {"ok": False, "redis": False, "database": True})
    assert value(scrape(client), "router_redis_up") == 0
    page = client.get("/resources")
    assert page.status_code == 200 and "Redis does not answer" in page.text


def test_replication_pauses_and_the_unpublished_outbox_come_from_redis(
    sqlite_engine: Engine, make_client: MakeClient, r: redis.Redis, prefix: str
) -> None:
    state = Keys(prefix).state(dry_run=False)
    client = make_client(sqlite_engine)
    assert value(scrape(client), "router_replication_waits_timed_out_total") == 0
    r.hset(state.replication, "timeouts", 3)
    r.rpush(state.outbox, f"{prefix}status", 0, b"{}", f"{prefix}assign:h1", 1000, b"{}")
    after = scrape(client)
    assert value(after, "router_replication_waits_timed_out_total") == 3
    assert value(after, "router_outbox_entries") == 2

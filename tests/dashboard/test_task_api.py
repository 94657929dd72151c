"""GET /api/tasks/{task_id}: a task's state, queue position and ETA, from a ledger snapshot an
in-process worker wrote to the real Redis; bad ids are a 400, unknown ones a 404, never a 500."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest
import redis
from dash_seed import MakeClient
from sqlalchemy import Engine
from starlette.testclient import TestClient
from support.processes import wait_for
from support.waiting_queue import publish, task

from dashboard.app import create_app
from router.catalog import load_catalog
from streams.keys import Keys
from worker.routing import RoutingWorker
from worker.settings import Settings
from worker.signals import StopFlag

Route = Callable[[list[dict[str, Any]]], None]


@pytest.fixture
def route(r: redis.Redis, redis_url: str, prefix: str) -> Route:
    """Publish events in one batch and let an in-process worker route them."""
    settings = Settings(redis_url=redis_url, prefix=prefix, consumer=f"w-{uuid.uuid4().hex[:6]}", block_ms=50)
    worker = RoutingWorker(settings, redis.Redis.from_url(redis_url), stop=StopFlag())
    keys = Keys(prefix)

    def run(docs: list[dict[str, Any]]) -> None:
        publish(r, keys, docs)
        wait_for(lambda: worker.step() or _caught_up(r, keys), what="the worker to route the batch")

    return run


def _caught_up(r: redis.Redis, keys: Keys) -> bool:
    groups = r.xinfo_groups(keys.events)
    return bool(groups) and groups[0]["lag"] == 0 and groups[0]["pending"] == 0


@pytest.fixture
def client(engine: Engine, make_client: MakeClient, route: Route) -> TestClient:
    route(
        [
            {"type": "slot.free", "slot_id": "h1", "model": "haiku"},
            task("runs", 90),
            task("waits-1", 50),
            task("waits-2", 40),
            task("cancelled", 30),
            {"type": "task.pending", "task_id": "never", "priority": 50, "requires": {"writing": 10}},
        ]
    )
    route([{"type": "task.cancelled", "task_id": "cancelled"}])
    return make_client(engine)


def test_a_waiting_task_has_its_position_and_when_it_started_waiting(client: TestClient) -> None:
    first, second = client.get("/api/tasks/waits-1").json(), client.get("/api/tasks/waits-2").json()
    assert (first["state"], first["position"], second["position"]) == ("waiting", 1, 2)
    assert first["eta_s"] is None  # no slot has freed up after a task yet: nothing measured
    assert first["waiting_since"].endswith("Z") and "T" in first["waiting_since"]
    assert first["last_decision"]["outcome"] == "await_slot"
    assert first["last_decision"]["position"] == 1


@pytest.mark.parametrize(
    ("task_id", "state", "slot_id"),
    [("runs", "assigned", "h1"), ("never", "unroutable", None), ("cancelled", "cancelled", None)],
)
def test_a_task_that_does_not_wait_has_its_state_and_no_position(
    client: TestClient, task_id: str, state: str, slot_id: str | None
) -> None:
    response = client.get(f"/api/tasks/{task_id}")
    assert response.status_code == 200
    body = response.json()
    assert (body["state"], body["slot_id"], body["position"], body["eta_s"]) == (state, slot_id, None, None)


@pytest.mark.parametrize("task_id", ["no-such-task", "a/b", "%E2%9C%93", "x" * 128])
def test_an_unknown_task_is_a_404_with_a_json_error(client: TestClient, task_id: str) -> None:
    response = client.get(f"/api/tasks/{task_id}")
    assert response.status_code == 404
    assert "no task" in response.json()["error"]


@pytest.mark.parametrize(
    ("path", "why"),
    [
        ("/api/tasks/" + "x" * 129, "longer than 128"),
        ("/api/tasks/%FF", "not UTF-8"),
        ("/api/tasks/ok%C3", "not UTF-8"),
        ("/api/tasks/", "empty"),
        ("/api/tasks", "empty"),
    ],
)
def test_a_malformed_task_id_is_a_400_with_a_json_error(client: TestClient, path: str, why: str) -> None:
    response = client.get(path)
    assert response.status_code == 400
    assert why in response.json()["error"]


def test_an_unreadable_snapshot_entry_leaves_the_position_unknown_not_a_500(
    client: TestClient, r: redis.Redis, prefix: str
) -> None:
    r.hset(Keys(prefix).state(dry_run=False).waiting, "garbled", b"{not json")
    body = client.get("/api/tasks/garbled").json()
    assert (body["state"], body["position"]) == ("waiting", None)
    assert "cannot be read" in body["queue_error"]


def test_redis_down_is_a_503_with_a_json_error(engine: Engine) -> None:
    down = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.5)
    client = TestClient(create_app(engine=engine, r=down, catalog=load_catalog(), prefix="nowhere:"))
    response = client.get("/api/tasks/anything")
    assert response.status_code == 503
    assert "Redis" in response.json()["error"]


def test_the_waiting_table_shows_position_and_eta(client: TestClient) -> None:
    page = client.get("/resources").text
    assert '<th title="1-based, among the waiting tasks' in page and ">ETA</th>" in page
    row = page[page.index('<tr data-task="waits-2">') :].split("</tr>")[0]
    assert '<td class="position">2</td>' in row
    assert '<td class="eta">unknown</td>' in row

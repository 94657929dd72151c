"""Queue position and ETA end to end (PROTOCOL.md v1.1): a live `router worker` announces each
waiting task's place on `router:status`, `router web` serves it at `/api/tasks/{task_id}`, and
`router explain` shows it; all against the real Redis."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import orjson
import pytest
import redis
from support import waiting_queue as queue
from support.cli import run_router
from support.processes import RouterProcess, wait_for
from support.web import get_json, start_web

from store.db import make_engine
from store.migrate import upgrade
from streams.keys import Keys

pytestmark = pytest.mark.integration

# Distinct priorities, not in order of arrival: the matching order is not the arrival order.
PRIORITIES = [30, 80, 10, 60, 45, 70]


@pytest.fixture
def web_env(redis_url: str, prefix: str, tmp_path: Path) -> dict[str, str]:
    url = f"sqlite:///{tmp_path / 'decisions.sqlite3'}"
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    return {"REDIS_URL": redis_url, "ROUTER_PREFIX": prefix, "DATABASE_URL": url}


@pytest.fixture
def web(web_env: dict[str, str], tmp_path: Path) -> Iterator[str]:
    proc, base = start_web(web_env, tmp_path / "web.log")
    try:
        yield base
    finally:
        proc.stop()


def test_await_slot_statuses_carry_positions_in_matching_order(
    r: redis.Redis, keys: Keys, start_worker: Callable[..., RouterProcess]
) -> None:
    start_worker()
    queue.warm_up(r, keys)
    statuses = queue.queue_up(r, keys, PRIORITIES)

    # positions 1..n among the tasks that compete for the same models (here: all of them)
    assert sorted(s["position"] for s in statuses.values()) == list(range(1, len(PRIORITIES) + 1))
    # measured service times: every ETA is a number, and a later place never expects an earlier slot
    etas = [statuses[task_id]["eta_s"] for task_id in queue.by_position(statuses)]
    assert all(isinstance(eta, int | float) and eta > 0 for eta in etas), etas
    assert etas == sorted(etas)
    # the decision records carry the same place as the status messages
    records = {d["task_id"]: d for d in queue.docs(r, keys.decisions) if d["outcome"] == "await_slot"}
    assert {t: (records[t]["position"], records[t]["eta_s"]) for t in statuses} == {
        t: (s["position"], s["eta_s"]) for t, s in statuses.items()
    }
    # the slots then serve them exactly in the order of their positions
    assert queue.drain(r, keys, len(PRIORITIES)) == queue.by_position(statuses)


def test_a_task_announced_before_any_slot_freed_has_a_position_and_no_eta(
    r: redis.Redis, keys: Keys, start_worker: Callable[..., RouterProcess]
) -> None:
    start_worker()
    queue.publish(r, keys, [{"type": "slot.free", "slot_id": "h1", "model": "haiku"}])
    wait_for(lambda: r.hexists(keys.state(dry_run=False).slots, "h1"), what="the slot registered")
    # t-first takes h1; t-next waits, and no slot has freed up after a task yet
    queue.publish(r, keys, [queue.task("t-first", 50), queue.task("t-next", 40)])
    waiting = wait_for(
        lambda: next((s for s in queue.docs(r, keys.status) if s["task_id"] == "t-next"), None),
        what="t-next's status",
    )
    assert waiting["type"] == "await_slot"
    assert waiting["position"] == 1 and waiting["eta_s"] is None


def test_api_and_explain_show_the_place_of_a_waiting_task(
    r: redis.Redis,
    keys: Keys,
    start_worker: Callable[..., RouterProcess],
    web: str,
    web_env: dict[str, str],
) -> None:
    start_worker()
    held = queue.warm_up(r, keys)
    statuses = queue.queue_up(r, keys, PRIORITIES)
    last = queue.by_position(statuses)[-1]

    def placed() -> dict[str, Any] | None:
        code, body = get_json(f"{web}/api/tasks/{last}")
        return body if code == 200 and body.get("position") is not None else None

    body = wait_for(placed, what="the API to place the waiting task")  # its view is at most ~1 s old
    assert body["state"] == "waiting" and body["task_id"] == last
    assert body["position"] == len(PRIORITIES) == statuses[last]["position"]
    assert isinstance(body["eta_s"], int | float) and body["eta_s"] > 0
    since = datetime.fromisoformat(body["waiting_since"].replace("Z", "+00:00"))
    assert since == datetime.fromtimestamp(statuses[last]["at"] / 1000, tz=UTC)
    assert body["last_decision"]["decision_id"] == statuses[last]["decision_id"]
    assert body["last_decision"]["outcome"] == "await_slot"

    code, body = get_json(f"{web}/api/tasks/{held['h1']}")
    assert code == 200 and (body["state"], body["slot_id"], body["position"]) == ("assigned", "h1", None)
    assert body["last_decision"]["outcome"] == "assigned"

    code, body = get_json(f"{web}/api/tasks/never-published")
    assert code == 404 and "never-published" in body["error"]
    for bad, why in [("x" * 129, "longer than 128"), ("%FF%FE", "not UTF-8"), ("", "empty")]:
        code, body = get_json(f"{web}/api/tasks/{bad}")
        assert code == 400 and why in body["error"], (bad, code, body)
    code, body = get_json(f"{web}/api/tasks/{quote('x' * 128)}")
    assert code == 404  # the longest id the wire allows is an id, just not a known one

    explained = run_router("explain", last, "--json", env=web_env)
    assert explained.returncode == 0, explained.stderr
    doc = orjson.loads(explained.stdout)
    assert (doc["state"], doc["position"]) == ("waiting", len(PRIORITIES))
    assert doc["eta_s"] > 0 and doc["waiting_since"] == body_since(statuses[last])
    assert doc["decisions"][-1]["position"] == len(PRIORITIES)
    text = run_router("explain", last, env=web_env)
    assert text.returncode == 0, text.stderr
    assert f"position {len(PRIORITIES)} among the waiting tasks" in text.stdout
    assert "ETA ~" in text.stdout
    assert f"queue as it started waiting: position {len(PRIORITIES)}, ETA" in text.stdout


def body_since(status: dict[str, Any]) -> str:
    at = datetime.fromtimestamp(status["at"] / 1000, tz=UTC)
    return at.strftime("%Y-%m-%dT%H:%M:%S.") + f"{at.microsecond // 1000:03d}Z"

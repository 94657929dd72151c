"""GET /resources renders the seeded picture, escapes data, and refuses hostile parameters."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest
import redis
from dash_seed import HOSTILE_LAYER, MakeClient, insert, standard_rows
from sqlalchemy import Engine

from streams.keys import Keys

API = "/api/resources/routing-matrix"
HOSTILE_QUERIES = [
    "hours=-1",
    "hours=abc",
    "hours=0",
    "hours=721",
    "hours=99999999999999999999999",
    "hours=1e3",
    "hours=2.5",
    "hours=%EF%BC%91",  # a full-width digit one: isdigit() says yes, the parser must say no
    "hours=",
    "window=2h",
    "window=%3Cscript%3E",
    "window=24h&hours=24",
    "hours=1&hours=24",  # which one was meant is a guess
    "window=1h&window=7d",
]


@pytest.fixture
def seeded(engine: Engine) -> Engine:
    insert(engine, *standard_rows())
    return engine


@pytest.mark.parametrize("query", HOSTILE_QUERIES)
def test_the_api_refuses_bad_parameters_with_400_and_a_message(
    seeded: Engine, make_client: MakeClient, query: str
) -> None:
    response = make_client(seeded).get(f"{API}?{query}")
    assert response.status_code == 400
    assert response.json()["error"]


@pytest.mark.parametrize("query", HOSTILE_QUERIES)
def test_the_page_refuses_bad_parameters_with_400_and_no_echo(
    seeded: Engine, make_client: MakeClient, query: str
) -> None:
    response = make_client(seeded).get(f"/resources?{query}")
    assert response.status_code == 400
    assert "text/html" in response.headers["content-type"]
    assert "<script>" not in response.text


def test_a_layer_named_like_a_script_is_escaped_in_the_page(seeded: Engine, make_client: MakeClient) -> None:
    page = make_client(seeded).get("/resources").text
    assert HOSTILE_LAYER not in page
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in page
    assert "<script" not in page.lower()  # the page has no script of its own either


def test_the_page_shows_the_matrix_totals_and_window(seeded: Engine, make_client: MakeClient) -> None:
    response = make_client(seeded).get("/resources?window=24h")
    assert response.status_code == 200
    page = response.text
    assert 'http-equiv="refresh"' in page
    assert 'data-model="sonnet" data-layer="design"' in page
    assert "$0.80" in page and "actual" in page and "mixed" in page
    assert 'id="cost-chart"' in page
    assert 'aria-current="page">24h<' in page
    assert "50.0%" in page  # premium share: one of two opus tasks below the median EV


def test_the_page_shows_awaiting_tasks_and_slots_from_the_ledger_snapshot(
    seeded: Engine, make_client: MakeClient, r: redis.Redis, prefix: str
) -> None:
    client = make_client(seeded)
    now_ms = int(client.app.state.dashboard.clock() * 1000)  # type: ignore[attr-defined]
    state = Keys(prefix).state(dry_run=False)
    task = {"task_id": "waits-<b>", "priority": 40, "layer": "docs", "title": "t"}
    r.hset(state.waiting, "waits-<b>", orjson.dumps({"task": task, "ev": 0.4, "seq": 1, "since_ms": now_ms - 90_000}))
    slot = {"slot_id": "h1", "model": "haiku", "account": "acme", "state": "busy", "since_ms": now_ms - 5_000}
    r.hset(state.slots, "h1", orjson.dumps({**slot, "last_heard_ms": now_ms - 1_000, "task_id": "x"}))
    r.hset(state.utilisation, "acme\x1fhaiku", "0.25")
    page = client.get("/resources").text
    assert 'id="awaiting-count">1<' in page
    assert "waits-&lt;b&gt;" in page and "1m 30s" in page
    assert "acme" in page and "state-busy" in page and "25.0%" in page


def test_the_page_reads_utilisation_of_an_account_whose_name_holds_the_key_separator(
    seeded: Engine, make_client: MakeClient, r: redis.Redis, prefix: str
) -> None:
    """The router keys utilisation "<account>\\x1f<model>", and model ids never hold \\x1f."""
    client = make_client(seeded)
    now_ms = int(client.app.state.dashboard.clock() * 1000)  # type: ignore[attr-defined]
    state = Keys(prefix).state(dry_run=False)
    slot = {"slot_id": "h1", "model": "haiku", "account": "team\x1fx", "state": "free", "since_ms": now_ms}
    r.hset(state.slots, "h1", orjson.dumps({**slot, "last_heard_ms": now_ms}))
    r.hset(state.utilisation, "team\x1fx\x1fhaiku", "0.25")
    assert "25.0%" in client.get("/resources").text


def test_a_hand_edited_snapshot_shows_placeholders_not_a_500(
    seeded: Engine, make_client: MakeClient, r: redis.Redis, prefix: str
) -> None:
    """Times no date can hold and bytes that are not UTF-8, as a hand-edited snapshot may hold."""
    client = make_client(seeded)
    state = Keys(prefix).state(dry_run=False)
    task = {"task_id": "t-far", "priority": 40, "layer": "docs", "title": "t"}
    r.hset(state.waiting, "t-far", orjson.dumps({"task": task, "ev": 0.4, "seq": 1, "since_ms": 1e300}))
    r.hset(state.waiting, "t-long", orjson.dumps({"task": {"task_id": "t-long"}, "since_ms": "9" * 400}))
    slot = {"slot_id": "h1", "model": "haiku", "account": "acme", "state": "busy", "task_id": "x"}
    r.hset(state.slots, "h1", orjson.dumps({**slot, "since_ms": 2**63 - 1, "last_heard_ms": -(10**15)}))
    r.hset(state.utilisation, b"\xff\xfe", b"\xff")
    response = client.get("/resources")
    assert response.status_code == 200
    assert 'id="awaiting-count">2<' in response.text and "t-far" in response.text and "state-busy" in response.text


def test_the_root_redirects_to_the_page(seeded: Engine, make_client: MakeClient) -> None:
    response = make_client(seeded).get("/", follow_redirects=False)
    assert response.status_code in (302, 307) and response.headers["location"] == "/resources"


@pytest.mark.parametrize("path", ["/resources/", "/resources", API, "/"])
def test_a_query_string_that_is_not_utf8_gets_a_400_not_a_500(
    seeded: Engine, make_client: MakeClient, path: str
) -> None:
    """Raw bytes in the query (no HTTP client sends them; a hand-made request can): the trailing
    slash redirect would build a URL from them."""
    app = make_client(seeded).app
    scope = {
        "type": "http",
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"hours=\xff",
        "headers": [(b"host", b"testserver")],
        "server": ("testserver", 80),
        "client": ("127.0.0.1", 1),
    }
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    assert sent[0]["status"] == 400
    assert orjson.loads(sent[1]["body"]) == {"error": "the query string is not UTF-8"}

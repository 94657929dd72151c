"""A real browser: Debian's Chromium, driven by Playwright, reads /resources from `router web`."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis
from dash_seed import insert, standard_rows
from support import waiting_queue as queue
from support.web import start_web

from store.db import make_engine
from store.schema import metadata
from streams.keys import Keys

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def _require_chromium() -> None:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        reason = "the playwright package is not installed (pip install -e '.[dev]')"
        pytest.fail(reason) if IN_CI else pytest.skip(reason)
    if not CHROMIUM.exists():
        reason = f"{CHROMIUM} is missing: apt-get install -y chromium"
        pytest.fail(reason) if IN_CI else pytest.skip(reason)


BUDGETS_TOML = """
[[budget]]
name = "premium-daily"
period = "day"
usd = 10.0
models = ["opus"]
mode = "soft"
"""


@pytest.fixture
def web(tmp_path: Path, redis_url: str, prefix: str) -> Iterator[str]:
    """`router web` on a SQLite file seeded with the standard rows around the real current time."""
    yield from serve_web(tmp_path, redis_url, prefix, standard_rows(now=datetime.now(tz=UTC)))


def serve_web(
    tmp_path: Path, redis_url: str, prefix: str, rows: tuple[list[dict[str, Any]], list[dict[str, Any]]]
) -> Iterator[str]:
    """`router web` on a SQLite file seeded with `rows` (decisions, usage), with one budget whose spend
    today is $12.50 (booked by a router, as the snapshot holds it); yields its base URL."""
    _require_chromium()
    budgets = tmp_path / "budgets.toml"
    budgets.write_text(BUDGETS_TOML)
    today = datetime.now(tz=UTC).strftime("%Y-%m-%d")
    with redis.Redis.from_url(redis_url) as r:
        r.hset(Keys(prefix).state(dry_run=False).budgets, "premium-daily", orjson.dumps([today, 12.5, 100]))
    url = f"sqlite:///{tmp_path / 'web.sqlite3'}"
    engine = make_engine(url)
    metadata.create_all(engine)
    insert(engine, *rows)
    engine.dispose()
    proc, base = start_web(
        {"REDIS_URL": redis_url, "ROUTER_PREFIX": prefix, "DATABASE_URL": url, "ROUTER_BUDGETS": str(budgets)},
        tmp_path / "web.log",
    )
    try:
        yield base
    finally:
        proc.stop()


def test_chromium_shows_the_seeded_matrix(web: str, tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1500, "height": 1000})
            page.goto(f"{web}/resources?window=24h")
            assert page.title().startswith("Routing")

            def cell(model: str, layer: str) -> str:
                return page.locator(f'td[data-model="{model}"][data-layer="{layer}"]').inner_text()

            chore = cell("haiku", "chore")
            assert chore.split()[0] == "3" and "$0.04" in chore and "mixed" in chore
            design = cell("sonnet", "design")
            assert design.split()[0] == "2" and "$0.80" in design and "$0.4000/dec" in design and "actual" in design
            strategy = cell("opus", "strategy")
            assert strategy.split()[0] == "2" and "$1.20" in strategy and "estimate" in strategy
            assert cell("glm", "chore") == "·"
            assert page.locator("#grand-total").inner_text().split()[0] == "8"
            assert "50.0%" in page.locator("#premium-share").inner_text()
            # the script-like layer name is text in a header, not a script that ran
            assert page.locator("th", has_text="<script>alert('x')</script>").count() == 1
            assert page.locator("#cost-chart rect").count() == 3
            budget = page.locator("#budgets tbody tr").first.inner_text()
            assert "premium-daily" in budget and "$12.50" in budget and "$10.00" in budget and "125.0%" in budget
            assert "(spent)" in budget
            page.screenshot(path=str(tmp_path / "resources.png"), full_page=True)
        finally:
            browser.close()
    assert (tmp_path / "resources.png").stat().st_size > 10_000


@pytest.fixture
def queued(tmp_path: Path, redis_url: str, prefix: str) -> Iterator[tuple[str, dict[str, dict[str, Any]]]]:
    """A live worker with tasks waiting behind busy, measured slots, and `router web` beside it;
    yields the page's base URL and each waiting task's await_slot status message."""
    _require_chromium()
    worker = queue.start_worker(redis_url, prefix, tmp_path / "worker.log")
    r = redis.Redis.from_url(redis_url)
    try:
        keys = Keys(prefix)
        queue.warm_up(r, keys)
        statuses = queue.queue_up(r, keys, [20, 70, 50])
        url = f"sqlite:///{tmp_path / 'web.sqlite3'}"
        metadata.create_all(make_engine(url))
        proc, base = start_web(
            {"REDIS_URL": redis_url, "ROUTER_PREFIX": prefix, "DATABASE_URL": url}, tmp_path / "web.log"
        )
        try:
            yield base, statuses
        finally:
            proc.stop()
    finally:
        r.close()
        worker.stop()


def test_chromium_shows_each_waiting_tasks_position_and_eta(
    queued: tuple[str, dict[str, dict[str, Any]]], tmp_path: Path
) -> None:
    from playwright.sync_api import sync_playwright

    base, statuses = queued
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1500, "height": 1000})
            page.goto(f"{base}/resources")
            headers = page.locator("#awaiting thead th").all_inner_texts()
            assert headers[-2:] == ["position", "ETA"]
            for task_id, status in statuses.items():
                row = page.locator(f'#awaiting tr[data-task="{task_id}"]')
                assert row.locator("td.position").inner_text() == str(status["position"])
                assert re.fullmatch(r"~\d+ (s|min|h|d)", row.locator("td.eta").inner_text())
            page.screenshot(path=str(tmp_path / "awaiting.png"), full_page=True)
        finally:
            browser.close()
    assert sorted(s["position"] for s in statuses.values()) == [1, 2, 3]

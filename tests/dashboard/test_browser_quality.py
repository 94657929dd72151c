"""A real browser reads the Quality panel of /resources from `router web` (Debian's Chromium)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from dash_seed import insert
from support.processes import RouterProcess, wait_for
from test_browser import CHROMIUM, CHROMIUM_ARGS, _answers, _free_port, _require_chromium
from test_quality_view import quality_rows

from store.db import make_engine
from store.schema import metadata

pytestmark = pytest.mark.browser


@pytest.fixture
def web_quality(tmp_path: Path, redis_url: str, prefix: str) -> Iterator[str]:
    _require_chromium()
    url = f"sqlite:///{tmp_path / 'web.sqlite3'}"
    engine = make_engine(url)
    metadata.create_all(engine)
    insert(engine, *quality_rows(now=datetime.now(tz=UTC)))
    engine.dispose()
    port = _free_port()
    proc = RouterProcess(
        ["web", "--host", "127.0.0.1", "--port", str(port)],
        env={"REDIS_URL": redis_url, "ROUTER_PREFIX": prefix, "DATABASE_URL": url},
        log_path=tmp_path / "web.log",
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: _answers(f"{base}/healthz") or proc.proc.poll() is not None, what="router web to answer")
        assert proc.proc.poll() is None, proc.log()
        yield base
    finally:
        proc.stop()


def test_chromium_shows_success_rate_and_cost_per_success(web_quality: str, tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1500, "height": 1000})
            page.goto(f"{web_quality}/resources?window=24h")
            haiku = page.locator('#quality-table tr[data-model="haiku"][data-layer="docs"]')
            assert haiku.locator("td.success").inner_text().startswith("66.7%")
            assert "20.8%" in haiku.locator("td.success").inner_text()  # the interval's low end
            assert haiku.locator("td.usd-per-success").inner_text() == "$0.0450"
            sonnet = page.locator('#quality-table tr[data-model="sonnet"][data-layer="docs"]')
            assert sonnet.locator("td.usd-per-success").inner_text() == "$0.3000"
            page.locator("#quality").screenshot(path=str(tmp_path / "quality.png"))
        finally:
            browser.close()
    assert (tmp_path / "quality.png").stat().st_size > 2_000

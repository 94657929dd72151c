"""A real browser reads the Quality panel of /resources from `router web` (Debian's Chromium)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import redis
from test_browser import CHROMIUM, CHROMIUM_ARGS, serve_web
from test_quality_view import quality_rows

pytestmark = pytest.mark.browser


@pytest.fixture
def web_quality(tmp_path: Path, redis_url: str, prefix: str, r: redis.Redis) -> Iterator[str]:
    """`router web` on the quality view's seeded rows, around the real current time."""
    yield from serve_web(tmp_path, redis_url, prefix, r, quality_rows(now=datetime.now(tz=UTC)))


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

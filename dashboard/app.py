"""The Starlette app behind `router web`. Endpoints are plain functions: Starlette runs them in
its thread pool, which suits the blocking Redis and SQLAlchemy clients."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import redis
from jinja2 import Environment, FileSystemLoader
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from dashboard import format as fmt
from dashboard.budgets import read_budgets, standing_to_json
from dashboard.chart import bar_chart
from dashboard.live import LiveState, read_live
from dashboard.matrix import Matrix, build_matrix
from dashboard.metrics import DecisionTail, make_registry
from dashboard.params import WINDOWS, BadParameter, Window, parse_window
from dashboard.quality import OutcomeCollector, quality_json
from dashboard.queries import ping, window_sums
from router.budgets import Budget, BudgetStanding
from router.catalog import Catalog
from router.quality import GateSettings
from store.quality import QualityRow, quality
from streams.keys import Keys

TEMPLATES = Path(__file__).with_name("templates")
DEFAULT_REFRESH_S = 30


@dataclass(frozen=True, slots=True, kw_only=True)
class Dashboard:
    engine: Engine
    redis: redis.Redis
    keys: Keys
    catalog: Catalog
    registry: CollectorRegistry
    tail: DecisionTail
    refresh_s: int
    clock: Callable[[], float]
    templates: Environment
    budgets: tuple[Budget, ...] = ()

    def window_bounds(self, window: Window) -> tuple[datetime, datetime]:
        until = datetime.fromtimestamp(int(self.clock()), tz=UTC)
        return until - timedelta(hours=window.hours), until

    def matrix(self, window: Window) -> Matrix:
        since, until = self.window_bounds(window)
        return build_matrix(window_sums(self.engine, since=since, until=until), self.catalog, since=since, until=until)

    def quality(self, window: Window) -> list[QualityRow]:
        since, until = self.window_bounds(window)
        return quality(self.engine, axis="layer", since=since, until=until)


def create_app(
    *,
    engine: Engine,
    r: redis.Redis,
    catalog: Catalog,
    prefix: str = "router:",
    refresh_s: int = DEFAULT_REFRESH_S,
    clock: Callable[[], float] = time.time,
    budgets: Sequence[Budget] = (),
    gate: GateSettings | None = None,
) -> Starlette:
    keys = Keys(prefix)
    registry, tail = make_registry(r, keys, budgets=budgets, clock=clock)
    outcomes = OutcomeCollector(r, keys, gate or GateSettings())
    registry.register(outcomes)
    # autoescape on for every template, whatever its file name: layer names and titles are data.
    templates = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=True)
    templates.filters.update(
        usd=fmt.usd, usd_each=fmt.usd_each, pct=fmt.pct, ago=fmt.ago, utc=fmt.utc, duration=fmt.duration
    )
    dash = Dashboard(
        engine=engine,
        redis=r,
        keys=keys,
        catalog=catalog,
        registry=registry,
        tail=tail,
        refresh_s=refresh_s,
        clock=clock,
        templates=templates,
        budgets=tuple(budgets),
    )

    def resources(request: Request) -> Response:
        try:
            window = parse_window(request.query_params)
        except BadParameter as exc:
            return _html_error(dash, 400, str(exc))
        try:
            matrix = dash.matrix(window)
            quality_rows = dash.quality(window)
        except SQLAlchemyError:
            return _html_error(dash, 503, "The decision database does not answer; the page will retry.")
        live, live_error = _live(dash)
        budgets = _budgets(dash)
        chart = bar_chart([(m, matrix.by_model[m].total_usd, matrix.tiers.get(m)) for m in matrix.models])
        html = dash.templates.get_template("resources.html").render(
            matrix=matrix,
            quality=quality_rows,
            chart=chart,
            live=live,
            live_error=live_error,
            budgets=budgets,
            window=window,
            windows=list(WINDOWS),
            refresh_s=dash.refresh_s,
            now_ms=int(dash.clock() * 1000),
        )
        return HTMLResponse(html)

    def routing_matrix(request: Request) -> Response:
        return _window_json(request, lambda window: dash.matrix(window).to_json())

    def quality_api(request: Request) -> Response:
        return _window_json(request, lambda window: quality_json(dash.quality(window), hours=window.hours))

    def budgets_api(request: Request) -> Response:
        standings = _budgets(dash)
        if standings is None:
            return JSONResponse({"error": "Redis does not answer: budget spend is unknown right now"}, status_code=503)
        return JSONResponse({"budgets": [standing_to_json(s) for s in standings]})

    def metrics(request: Request) -> Response:
        return Response(generate_latest(dash.registry), media_type=CONTENT_TYPE_LATEST)

    def healthz(request: Request) -> Response:
        checks = {"redis": _redis_ok(dash.redis), "database": _database_ok(dash.engine)}
        body: dict[str, Any] = {"ok": all(checks.values()), **checks}
        return JSONResponse(body, status_code=200 if body["ok"] else 503)

    def index(request: Request) -> Response:
        return RedirectResponse("/resources")

    routes = [
        Route("/", index),
        Route("/resources", resources),
        Route("/api/resources/routing-matrix", routing_matrix),
        Route("/api/resources/budgets", budgets_api),
        Route("/api/resources/quality", quality_api),
        Route("/metrics", metrics),
        Route("/healthz", healthz),
    ]

    # Count decisions from here on; if Redis is down now, the first scrape that reaches it starts.
    with contextlib.suppress(redis.RedisError):
        tail.start_at_tail()
        outcomes.collect()  # the outcomes counter starts at the usage stream's tail, likewise
    app = Starlette(routes=routes, middleware=[Middleware(RefuseUndecodableQuery)])
    app.state.dashboard = dash
    return app


class RefuseUndecodableQuery:
    """A query string that is not UTF-8 gets a 400 before routing: Starlette decodes it as UTF-8
    when it builds a URL (the redirect of a path with a trailing slash, say) and would answer 500."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            try:
                scope.get("query_string", b"").decode("utf-8")
            except UnicodeDecodeError:
                await JSONResponse({"error": "the query string is not UTF-8"}, status_code=400)(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _window_json(request: Request, build: Callable[[Window], dict[str, Any]]) -> Response:
    """A JSON API over a window of the store: 400 for bad parameters, 503 while the database is down."""
    try:
        window = parse_window(request.query_params)
    except BadParameter as exc:
        return JSONResponse({"error": str(exc)}, status_code=400)
    try:
        return JSONResponse(build(window))
    except SQLAlchemyError:
        return JSONResponse({"error": "the decision database does not answer"}, status_code=503)


def _live(dash: Dashboard) -> tuple[LiveState | None, str | None]:
    try:
        return read_live(dash.redis, dash.keys), None
    except redis.RedisError:
        return None, "Redis does not answer: slots and awaiting tasks are unknown right now."


def _budgets(dash: Dashboard) -> list[BudgetStanding] | None:
    """Each budget's standing now; None when Redis does not answer."""
    try:
        return read_budgets(dash.redis, dash.keys, dash.budgets, now_ms=int(dash.clock() * 1000))
    except redis.RedisError:
        return None


def _html_error(dash: Dashboard, status: int, message: str) -> Response:
    html = dash.templates.get_template("error.html").render(status=status, message=message, refresh_s=dash.refresh_s)
    return HTMLResponse(html, status_code=status)


def _redis_ok(r: redis.Redis) -> bool:
    try:
        return bool(r.ping())
    except redis.RedisError:
        return False


def _database_ok(engine: Engine) -> bool:
    try:
        ping(engine)
    except SQLAlchemyError:
        return False
    return True

"""`router web`: the dashboard, `/metrics` and `/healthz` (uvicorn serving dashboard.app)."""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping

import uvicorn
from redis.backoff import NoBackoff
from redis.retry import Retry
from starlette.applications import Starlette

from dashboard.app import DEFAULT_REFRESH_S, create_app
from dashboard.db import read_only_engine
from router.catalog import load_catalog
from router.errors import ConfigError
from router.quality import GateMode, GateSettings
from streams.connection import connect
from worker.budget_file import load_budgets
from worker.commands.argtypes import int_between, port
from worker.commands.common import add_connection_options, settings_from
from worker.logs import configure
from worker.settings import Settings, router_config

# Short socket timeouts and one immediate retry (for a pooled connection Redis dropped): a page or a
# scrape should say "Redis does not answer" within seconds, not after redis-py's default backoff.
REDIS_TIMEOUT_S = 2.0
DEFAULT_PORT = 8000


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser("web", help="serve the dashboard (/resources), /metrics and /healthz")
    add_connection_options(p, database=True)
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=port, help=f"port to listen on, 0-65535 (default: env PORT, else {DEFAULT_PORT})")
    p.add_argument(
        "--refresh-s",
        type=int_between(1, 86_400),
        default=DEFAULT_REFRESH_S,
        help="how often the page reloads itself, in seconds (1-86400)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    configure(settings.log_level)
    listen_port = listen_port_from(args.port, os.environ)
    app = build_app(settings, refresh_s=args.refresh_s)
    uvicorn.run(app, host=args.host, port=listen_port, log_level=settings.log_level.lower(), access_log=False)
    return 0


def listen_port_from(flag: int | None, environ: Mapping[str, str]) -> int:
    """--port, else PORT (what honcho and Procfile hosts set for each process), else 8000."""
    if flag is not None:
        return flag
    value = environ.get("PORT")
    if value is None:
        return DEFAULT_PORT
    try:
        return port(value)
    except argparse.ArgumentTypeError as exc:
        raise ConfigError(f"PORT {exc}") from None


def build_app(settings: Settings, *, refresh_s: int = DEFAULT_REFRESH_S) -> Starlette:
    """The dashboard application for these settings (also served by `router demo`)."""
    # Unlike the worker, the dashboard starts without Redis or the database: /healthz reports them.
    r = connect(
        settings.redis_url,
        socket_timeout=REDIS_TIMEOUT_S,
        socket_connect_timeout=REDIS_TIMEOUT_S,
        retry=Retry(NoBackoff(), 1),
    )
    catalog = load_catalog(settings.catalog_path)
    app = create_app(
        engine=read_only_engine(settings.database_url),
        r=r,
        catalog=catalog,
        prefix=settings.prefix,
        refresh_s=max(1, refresh_s),
        budgets=load_budgets(settings.budgets_path, catalog),
        gate=GateSettings(
            mode=GateMode(settings.quality_gate),
            min_success=settings.min_success,
            min_outcomes=settings.quality_min_outcomes,
            window=settings.quality_window,
        ),
        router_config=router_config(settings),
    )
    return app

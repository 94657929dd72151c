"""Options every command shares: connection settings, each also an environment variable."""

from __future__ import annotations

import argparse
from typing import Any

import redis

from router.errors import RouterError
from streams.connection import connect, mask_url
from worker.settings import Settings, load_settings


def add_connection_options(parser: argparse.ArgumentParser, *, database: bool = False) -> None:
    parser.add_argument("--redis-url", help="Redis URL (env REDIS_URL)")
    parser.add_argument("--prefix", help="key prefix (env ROUTER_PREFIX, default router:)")
    parser.add_argument("--catalog", dest="catalog_path", help="catalogue TOML (env ROUTER_CATALOG)")
    if database:
        parser.add_argument("--database-url", help="SQLAlchemy URL (env DATABASE_URL)")


def settings_from(args: argparse.Namespace, **extra: Any) -> Settings:
    """Environment first, then the shared connection flags, then a command's own flags (None = unset)."""
    overrides = {name: getattr(args, name, None) for name in ("redis_url", "prefix", "catalog_path", "database_url")}
    overrides.update(extra)
    return load_settings(**{k: v for k, v in overrides.items() if v is not None})


def redis_from(settings: Settings) -> redis.Redis:
    r = connect(settings.redis_url, block_ms=settings.block_ms)
    try:
        r.ping()
    except redis.RedisError as exc:
        raise RouterError(f"cannot reach Redis at {mask_url(settings.redis_url)}: {exc}") from None
    return r

"""Every setting, read from the environment in this one place. Secrets never reach a repr or log."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any

from router.engine import RouterConfig
from router.errors import ConfigError
from streams.connection import cluster_prefix_problem, mask_url

DEFAULT_SQLITE_URL = "sqlite:///model-router.sqlite3"


_ORDER_DEFAULTS = RouterConfig()


def boolean(raw: str) -> bool:
    """An environment flag: 1/true/yes/on or 0/false/no/off, any case."""
    value = raw.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off"}:
        return False
    raise ValueError(raw)


def _default_consumer() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


@dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    redis_url: str = field(default="redis://localhost:6379/0", repr=False)
    database_url: str = field(default=DEFAULT_SQLITE_URL, repr=False)
    prefix: str = "router:"
    catalog_path: str | None = None
    ev_scorer: str | None = None  # "module:function"
    batch_size: int = 256
    block_ms: int = 1000
    stale_after_s: float = 90.0
    assignment_timeout_s: float = 60.0
    max_event_bytes: int = 64 * 1024
    max_deliveries: int = 5
    ev_window: int = 1000
    status_maxlen: int = 100_000
    assign_maxlen: int = 1_000
    decisions_maxlen: int = 0
    lease_ttl_ms: int = 5_000
    consumer: str = field(default_factory=_default_consumer)
    recorder_batch: int = 1_000
    decisions_keep: int = 100_000
    retention_days: float = 30.0
    log_level: str = "info"
    # the matching order's refinements (RouterConfig; docs/policy.md), defaults from there
    sole_tier_first: bool = _ORDER_DEFAULTS.sole_tier_first
    ev_priority_points: float = _ORDER_DEFAULTS.ev_priority_points
    age_s_per_priority_point: float = _ORDER_DEFAULTS.age_s_per_priority_point

    def __repr__(self) -> str:
        shown = ", ".join(f"{f.name}={getattr(self, f.name)!r}" for f in fields(self) if f.repr)
        return (
            f"Settings(redis_url={mask_url(self.redis_url)!r}, database_url={mask_url(self.database_url)!r}, {shown})"
        )

    def masked(self) -> dict[str, Any]:
        """For logs: every setting, with passwords in URLs replaced by ***."""
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["redis_url"] = mask_url(self.redis_url)
        out["database_url"] = mask_url(self.database_url)
        return out

    def with_overrides(self, **overrides: Any) -> Settings:
        return replace(self, **{k: v for k, v in overrides.items() if v is not None})


# environment variable -> (field, parser)
_ENV: dict[str, tuple[str, Callable[[str], Any]]] = {
    "REDIS_URL": ("redis_url", str),
    "DATABASE_URL": ("database_url", str),
    "ROUTER_PREFIX": ("prefix", str),
    "ROUTER_CATALOG": ("catalog_path", str),
    "ROUTER_EV_SCORER": ("ev_scorer", str),
    "ROUTER_BATCH_SIZE": ("batch_size", int),
    "ROUTER_BLOCK_MS": ("block_ms", int),
    "ROUTER_STALE_AFTER_S": ("stale_after_s", float),
    "ROUTER_ASSIGNMENT_TIMEOUT_S": ("assignment_timeout_s", float),
    "ROUTER_MAX_EVENT_BYTES": ("max_event_bytes", int),
    "ROUTER_MAX_DELIVERIES": ("max_deliveries", int),
    "ROUTER_EV_WINDOW": ("ev_window", int),
    "ROUTER_STATUS_MAXLEN": ("status_maxlen", int),
    "ROUTER_ASSIGN_MAXLEN": ("assign_maxlen", int),
    "ROUTER_DECISIONS_MAXLEN": ("decisions_maxlen", int),
    "ROUTER_LEASE_TTL_MS": ("lease_ttl_ms", int),
    "ROUTER_CONSUMER": ("consumer", str),
    "ROUTER_RECORDER_BATCH": ("recorder_batch", int),
    "ROUTER_DECISIONS_KEEP": ("decisions_keep", int),
    "ROUTER_RETENTION_DAYS": ("retention_days", float),
    "ROUTER_LOG_LEVEL": ("log_level", str),
    "ROUTER_SOLE_TIER_FIRST": ("sole_tier_first", boolean),
    "ROUTER_EV_PRIORITY_POINTS": ("ev_priority_points", float),
    "ROUTER_AGE_S_PER_PRIORITY_POINT": ("age_s_per_priority_point", float),
}

ENVIRONMENT_VARIABLES = tuple(_ENV)


def load_settings(environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for name, (field_name, parser) in _ENV.items():
        raw = env.get(name)
        if raw is None or raw == "":
            continue
        try:
            values[field_name] = parser(raw)
        except ValueError:
            raise ConfigError(f"{name}={raw!r} is not a valid {parser.__name__}") from None
    settings = Settings(**values).with_overrides(**overrides)
    _check(settings)
    return settings


def _check(s: Settings) -> None:
    positive = (
        "batch_size",
        "block_ms",
        "max_event_bytes",
        "max_deliveries",
        "ev_window",
        "lease_ttl_ms",
        "recorder_batch",
    )
    for name in positive:
        if getattr(s, name) <= 0:
            raise ConfigError(f"{name} must be positive, got {getattr(s, name)}")
    for name in ("ev_priority_points", "age_s_per_priority_point"):
        value = getattr(s, name)
        if not 0 <= value < float("inf"):
            raise ConfigError(f"{name} must be 0 (off) or a positive number, got {value}")
    if s.stale_after_s <= 0:
        raise ConfigError(f"stale_after_s must be positive, got {s.stale_after_s}")
    if not s.prefix:
        raise ConfigError("ROUTER_PREFIX must not be empty")
    problem = cluster_prefix_problem(s.redis_url, s.prefix)
    if problem is not None:
        raise ConfigError(problem)

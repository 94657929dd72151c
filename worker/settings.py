"""Every setting, read from the environment in this one place. Secrets never reach a repr or log."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any

from router.engine import RouterConfig
from router.errors import ConfigError
from store.jobs import MAX_RETENTION_DAYS
from streams.connection import cluster_prefix_problem, is_cluster_url, mask_url

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
    budgets_path: str | None = None  # a budgets TOML (PROTOCOL.md v1.1); None: no budgets
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
    # publish only what this many replicas have (WAIT); 0: publish at once (a single Redis)
    min_replicas: int = 0
    replica_timeout_ms: int = 1_000
    consumer: str = field(default_factory=_default_consumer)
    recorder_batch: int = 1_000
    decisions_keep: int = 100_000
    retention_days: float = 30.0
    log_level: str = "info"
    # the matching order's refinements (RouterConfig; docs/policy.md), defaults from there
    sole_tier_first: bool = _ORDER_DEFAULTS.sole_tier_first
    ev_rank_points: float = _ORDER_DEFAULTS.ev_rank_points
    ageing_points_per_service_time: float = _ORDER_DEFAULTS.ageing_points_per_service_time
    # failed outcomes and the quality gate (router/escalation.py, router/quality.py; docs/policy.md)
    max_escalations: int = _ORDER_DEFAULTS.max_escalations
    max_retries: int = _ORDER_DEFAULTS.max_retries
    quality_gate: str = _ORDER_DEFAULTS.quality_gate
    min_success: float = _ORDER_DEFAULTS.min_success
    quality_min_outcomes: int = _ORDER_DEFAULTS.quality_min_outcomes
    quality_window: int = _ORDER_DEFAULTS.quality_window
    quality_explore: float = _ORDER_DEFAULTS.quality_explore

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
    "ROUTER_BUDGETS": ("budgets_path", str),
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
    "ROUTER_MIN_REPLICAS": ("min_replicas", int),
    "ROUTER_REPLICA_TIMEOUT_MS": ("replica_timeout_ms", int),
    "ROUTER_CONSUMER": ("consumer", str),
    "ROUTER_RECORDER_BATCH": ("recorder_batch", int),
    "ROUTER_DECISIONS_KEEP": ("decisions_keep", int),
    "ROUTER_RETENTION_DAYS": ("retention_days", float),
    "ROUTER_LOG_LEVEL": ("log_level", str),
    "ROUTER_SOLE_TIER_FIRST": ("sole_tier_first", boolean),
    "ROUTER_EV_RANK_POINTS": ("ev_rank_points", float),
    "ROUTER_AGEING_POINTS_PER_SERVICE_TIME": ("ageing_points_per_service_time", float),
    "ROUTER_MAX_ESCALATIONS": ("max_escalations", int),
    "ROUTER_MAX_RETRIES": ("max_retries", int),
    "ROUTER_QUALITY_GATE": ("quality_gate", str),
    "ROUTER_MIN_SUCCESS": ("min_success", float),
    "ROUTER_QUALITY_MIN_OUTCOMES": ("quality_min_outcomes", int),
    "ROUTER_QUALITY_WINDOW": ("quality_window", int),
    "ROUTER_QUALITY_EXPLORE": ("quality_explore", float),
}

ENVIRONMENT_VARIABLES = tuple(_ENV)


def load_settings(environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for name, (field_name, parser) in _ENV.items():
        raw = env.get(name)
        if name == "ROUTER_PREFIX" and raw == "":
            # an empty value would fall back to the default, which is the live router's prefix
            raise ConfigError("ROUTER_PREFIX is set but empty: unset it to use the default 'router:'")
        if raw is None or raw == "":
            continue
        try:
            values[field_name] = parser(raw)
        except ValueError:
            raise ConfigError(f"{name}={raw!r} is not a valid {parser.__name__}") from None
    settings = Settings(**values).with_overrides(**overrides)
    _check(settings)
    return settings


# Every number's allowed range (inclusive), so a typo fails at start with a message instead of
# deep inside Redis or the database (a negative MAXLEN half-writes an atomic step; a negative
# retention deletes every row; NaN and huge values overflow timers). 0 means "uncapped" for the
# stream caps and "keep none beyond what is stored" for decisions_keep.
_DAY_S = 86_400.0
_INT_RANGES: dict[str, tuple[int, int]] = {
    "batch_size": (1, 100_000),
    "block_ms": (1, 3_600_000),
    "max_event_bytes": (1, 64 * 1024 * 1024),
    "max_deliveries": (1, 1_000),
    "ev_window": (1, 10_000_000),
    "lease_ttl_ms": (1, 86_400_000),
    "min_replicas": (0, 100),
    "replica_timeout_ms": (1, 3_600_000),
    "recorder_batch": (1, 100_000),
    "status_maxlen": (0, 2**62),
    "assign_maxlen": (0, 2**62),
    "decisions_maxlen": (0, 2**62),
    "decisions_keep": (0, 2**62),
    "max_escalations": (0, 10),
    "max_retries": (0, 100),
    "quality_min_outcomes": (1, 1_000_000),
    "quality_window": (1, 100_000),
}
# (low, high, low allowed): a float must be finite and within the range
_FLOAT_RANGES: dict[str, tuple[float, float, bool]] = {
    "stale_after_s": (0.0, 365 * _DAY_S, False),
    "assignment_timeout_s": (0.0, 365 * _DAY_S, False),
    "retention_days": (0.0, MAX_RETENTION_DAYS, False),  # what the retention job itself accepts
    "ev_rank_points": (0.0, 1e12, True),
    "ageing_points_per_service_time": (0.0, 1e12, True),
    "min_success": (0.0, 1.0, False),
    "quality_explore": (0.0, 1.0, True),
}
QUALITY_GATE_MODES = ("off", "shadow", "on")
LOG_LEVELS = ("debug", "info", "warning", "error", "critical")


def _check(s: Settings) -> None:
    for name, (low, high) in _INT_RANGES.items():
        value = getattr(s, name)
        if not low <= value <= high:
            raise ConfigError(f"{name} must be an integer from {low:,} to {high:,}, got {value}")
    for name, (low_f, high_f, low_ok) in _FLOAT_RANGES.items():
        value = getattr(s, name)
        above_low = value >= low_f if low_ok else value > low_f
        if not (above_low and value <= high_f):  # NaN fails both
            bound = "0 or more" if low_ok else "more than 0"
            raise ConfigError(f"{name} must be a number {bound} and at most {high_f:g}, got {value}")
    if not s.prefix:
        raise ConfigError("ROUTER_PREFIX must not be empty")
    if not s.consumer:
        raise ConfigError("the consumer name (ROUTER_CONSUMER) must not be empty")
    if s.log_level.lower() not in LOG_LEVELS:
        raise ConfigError(f"ROUTER_LOG_LEVEL must be one of {', '.join(LOG_LEVELS)}, got {s.log_level!r}")
    if s.quality_gate not in QUALITY_GATE_MODES:
        raise ConfigError(f"ROUTER_QUALITY_GATE must be one of {', '.join(QUALITY_GATE_MODES)}, got {s.quality_gate!r}")
    if s.quality_window < s.quality_min_outcomes:
        raise ConfigError(
            f"ROUTER_QUALITY_WINDOW ({s.quality_window}) must hold at least ROUTER_QUALITY_MIN_OUTCOMES "
            f"({s.quality_min_outcomes}) outcomes, or the gate could never judge"
        )
    if s.ev_scorer is not None and not all(part.strip() for part in s.ev_scorer.partition(":")[::2]):
        raise ConfigError(f"ROUTER_EV_SCORER must be 'module:function', got {s.ev_scorer!r}")
    problem = cluster_prefix_problem(s.redis_url, s.prefix)
    if problem is not None:
        raise ConfigError(problem)
    if s.min_replicas and is_cluster_url(s.redis_url):
        raise ConfigError("ROUTER_MIN_REPLICAS is not supported on Redis Cluster yet: leave it at 0 there")


def router_config(settings: Settings) -> RouterConfig:
    """The routing rules these settings give: the worker's (which adds what only it knows, dry_run and
    the id namespace), and a reader's that rebuilds the queue order from the snapshot (the dashboard,
    `router explain`). Settings name every rule setting as RouterConfig does, so each is taken."""
    shared = {f.name: getattr(settings, f.name) for f in fields(RouterConfig) if hasattr(settings, f.name)}
    return RouterConfig(**shared)

"""Redis connections with timeouts that suit blocking stream reads."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit, urlunsplit

import redis

# Extra socket time beyond the longest BLOCK, so a blocking read never hits the socket timeout
# (redis-py would retry it and turn one slow read into a long hang).
SOCKET_MARGIN_S = 5.0


def connect(url: str, *, block_ms: int = 1000, **overrides: Any) -> redis.Redis:
    options: dict[str, Any] = {
        "socket_timeout": block_ms / 1000 + SOCKET_MARGIN_S,
        "socket_connect_timeout": 5.0,
        "health_check_interval": 30,
    }
    options.update(overrides)
    return redis.Redis.from_url(url, **options)


def mask_url(url: str) -> str:
    """The URL with any password replaced by ***, for logs and reprs."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable url>"
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    netloc = f"{user}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))

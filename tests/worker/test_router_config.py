"""The read side rebuilds the queue with the rules the worker runs with: `router_config(settings)`
is the worker's RouterConfig, for every routing setting, whatever the settings are called."""

from __future__ import annotations

import dataclasses
import uuid
from typing import Any

import redis

from router.config import RouterConfig
from worker.routing import RoutingWorker
from worker.settings import Settings, router_config


def _changed(value: Any) -> Any:
    """Another valid value of the same kind."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, str):  # the quality gate's mode
        return {"off": "shadow", "shadow": "on", "on": "off"}[value]
    if isinstance(value, float) and 0 < value < 1:  # a share or a rate
        return value / 2
    return value * 2 + 1


def test_the_read_side_takes_every_routing_setting_the_worker_takes(redis_url: str, prefix: str) -> None:
    shared = [
        f.name for f in dataclasses.fields(RouterConfig) if f.name in {s.name for s in dataclasses.fields(Settings)}
    ]
    defaults = Settings()
    settings = Settings(
        redis_url=redis_url,
        prefix=prefix,
        consumer=f"c-{uuid.uuid4().hex[:6]}",
        **{name: _changed(getattr(defaults, name)) for name in shared},
    )
    worker = RoutingWorker(settings, redis.Redis.from_url(redis_url))
    by_worker = worker._restore().config  # the worker's own restore path builds its RouterConfig
    assert dataclasses.replace(by_worker, id_namespace="") == router_config(settings)
    assert all(getattr(router_config(settings), name) == getattr(settings, name) for name in shared)

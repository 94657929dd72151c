"""The worker builds its router from the settings: the matching-order refinements reach it."""

from __future__ import annotations

import redis

from worker.routing import RoutingWorker
from worker.settings import load_settings
from worker.signals import StopFlag


def test_matching_order_settings_reach_the_router(redis_url: str, prefix: str) -> None:
    settings = load_settings(
        {
            "REDIS_URL": redis_url,
            "ROUTER_PREFIX": prefix,
            "ROUTER_BLOCK_MS": "10",
            "ROUTER_SOLE_TIER_FIRST": "false",
            "ROUTER_EV_PRIORITY_POINTS": "0",
            "ROUTER_AGE_S_PER_PRIORITY_POINT": "600",
        }
    )
    w = RoutingWorker(settings, redis.Redis.from_url(redis_url), stop=StopFlag())
    w.step()  # takes the lease and builds the router from the snapshot
    assert w.router is not None
    config = w.router.config
    assert (config.sole_tier_first, config.ev_priority_points, config.age_s_per_priority_point) == (False, 0.0, 600.0)
    w.lease.release()

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
            "ROUTER_EV_RANK_POINTS": "0",
            "ROUTER_AGEING_POINTS_PER_SERVICE_TIME": "600",
        }
    )
    w = RoutingWorker(settings, redis.Redis.from_url(redis_url), stop=StopFlag())
    w.step()  # takes the lease and builds the router from the snapshot
    assert w.router is not None
    config = w.router.config
    assert (config.sole_tier_first, config.ev_rank_points, config.ageing_points_per_service_time) == (False, 0.0, 600.0)
    w.lease.release()

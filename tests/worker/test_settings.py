"""Settings come from the environment in one place; secrets never show."""

from __future__ import annotations

import pytest

from router.errors import ConfigError
from worker.backoff import compute_backoff
from worker.settings import load_settings


def test_defaults_without_environment() -> None:
    s = load_settings({})
    assert (s.redis_url, s.prefix, s.batch_size, s.block_ms) == ("redis://localhost:6379/0", "router:", 256, 1000)


def test_environment_values_are_parsed() -> None:
    s = load_settings({"ROUTER_PREFIX": "router:{pool-a}:", "ROUTER_BATCH_SIZE": "64", "ROUTER_STALE_AFTER_S": "2.5"})
    assert (s.prefix, s.batch_size, s.stale_after_s) == ("router:{pool-a}:", 64, 2.5)


def test_matching_order_settings_default_to_the_router_and_parse() -> None:
    from router.engine import RouterConfig

    default = load_settings({})
    config = RouterConfig()
    assert (default.sole_tier_first, default.ev_rank_points, default.ageing_points_per_service_time) == (
        config.sole_tier_first,
        config.ev_rank_points,
        config.ageing_points_per_service_time,
    )
    s = load_settings(
        {"ROUTER_SOLE_TIER_FIRST": "off", "ROUTER_EV_RANK_POINTS": "0", "ROUTER_AGEING_POINTS_PER_SERVICE_TIME": "120"}
    )
    assert (s.sole_tier_first, s.ev_rank_points, s.ageing_points_per_service_time) == (False, 0.0, 120.0)
    assert load_settings({"ROUTER_SOLE_TIER_FIRST": "Yes"}).sole_tier_first is True


def test_overrides_win_over_environment() -> None:
    assert load_settings({"ROUTER_BATCH_SIZE": "64"}, batch_size=8).batch_size == 8


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"ROUTER_BATCH_SIZE": "many"}, "ROUTER_BATCH_SIZE='many' is not a valid int"),
        ({"ROUTER_BLOCK_MS": "0"}, "block_ms must be an integer from 1 to 3,600,000, got 0"),
        ({"ROUTER_BLOCK_MS": "99999999999999"}, "block_ms must be an integer from 1"),
        ({"ROUTER_BATCH_SIZE": "99999999999999999999"}, "batch_size must be an integer from 1 to 100,000"),
        ({"ROUTER_STALE_AFTER_S": "-1"}, "stale_after_s must be a number more than 0"),
        ({"ROUTER_STALE_AFTER_S": "nan"}, "stale_after_s must be a number more than 0"),
        ({"ROUTER_ASSIGNMENT_TIMEOUT_S": "inf"}, "assignment_timeout_s must be a number more than 0"),
        ({"ROUTER_ASSIGNMENT_TIMEOUT_S": "-1"}, "assignment_timeout_s must be a number more than 0"),
        # a negative retention would delete every row; a negative MAXLEN half-writes an atomic step
        ({"ROUTER_RETENTION_DAYS": "-1"}, "retention_days must be a number more than 0"),
        ({"ROUTER_RETENTION_DAYS": "800000"}, "retention_days must be a number more than 0 and at most 36500"),
        ({"ROUTER_STATUS_MAXLEN": "-1"}, "status_maxlen must be an integer from 0"),
        ({"ROUTER_ASSIGN_MAXLEN": "-1"}, "assign_maxlen must be an integer from 0"),
        ({"ROUTER_DECISIONS_MAXLEN": "-1"}, "decisions_maxlen must be an integer from 0"),
        ({"ROUTER_DECISIONS_KEEP": "-1"}, "decisions_keep must be an integer from 0"),
        ({"ROUTER_PREFIX": ""}, "ROUTER_PREFIX is set but empty"),
        ({"ROUTER_CONSUMER": " "}, None),  # a blank name is a name
        ({"ROUTER_LOG_LEVEL": "bogus"}, "ROUTER_LOG_LEVEL must be one of debug, info, warning, error, critical"),
        ({"ROUTER_EV_SCORER": ":x"}, "ROUTER_EV_SCORER must be 'module:function'"),
        ({"ROUTER_EV_SCORER": "pkg.mod"}, "ROUTER_EV_SCORER must be 'module:function'"),
        ({"ROUTER_SOLE_TIER_FIRST": "maybe"}, "ROUTER_SOLE_TIER_FIRST='maybe' is not a valid boolean"),
        ({"ROUTER_EV_RANK_POINTS": "-5"}, "ev_rank_points must be a number 0 or more"),
        ({"ROUTER_AGEING_POINTS_PER_SERVICE_TIME": "inf"}, "ageing_points_per_service_time must be a number 0 or more"),
    ],
)
def test_bad_values_are_refused_with_the_variable_named(env: dict[str, str], message: str | None) -> None:
    if message is None:
        load_settings(env)
        return
    with pytest.raises(ConfigError, match=message):
        load_settings(env)


def test_the_edges_of_every_range_are_accepted() -> None:
    s = load_settings(
        {
            "ROUTER_STATUS_MAXLEN": "0",
            "ROUTER_DECISIONS_KEEP": "0",
            "ROUTER_BATCH_SIZE": "100000",
            "ROUTER_RETENTION_DAYS": "36500",
            "ROUTER_EV_RANK_POINTS": "0",
            "ROUTER_LOG_LEVEL": "WARNING",
            "ROUTER_EV_SCORER": "support.scorers:explosive",
        }
    )
    assert (s.status_maxlen, s.decisions_keep, s.batch_size, s.retention_days) == (0, 0, 100_000, 36_500.0)
    with pytest.raises(ConfigError, match="consumer name"):
        load_settings({}, consumer="")


def test_passwords_never_show_in_repr_or_log_form() -> None:
    s = load_settings(
        {"REDIS_URL": "rediss://:hunter2@redis.example:6380/0", "DATABASE_URL": "postgresql+psycopg://app:pw9@db/x"}
    )
    for text in (repr(s), str(s), str(s.masked())):
        assert "hunter2" not in text and "pw9" not in text
    assert s.masked()["redis_url"] == "rediss://:***@redis.example:6380/0"


def test_backoff_is_full_jitter_under_a_capped_doubling_ceiling() -> None:
    import random

    rand = random.Random(1)
    first = [compute_backoff(1, rand=rand) for _ in range(200)]
    third = [compute_backoff(3, rand=rand) for _ in range(200)]
    late = [compute_backoff(30, rand=rand) for _ in range(200)]
    assert all(0.0 <= d <= 0.1 for d in first)
    assert all(0.0 <= d <= 0.4 for d in third)
    assert all(0.0 <= d <= 10.0 for d in late)  # capped: 0.1 x 2^29 would be years
    # full jitter: the whole range is drawn from, its lower half too (equal jitter never goes
    # below half the ceiling)
    assert min(late) < 2.5 and max(late) > 7.5
    assert min(third) < 0.1 and max(third) > 0.3
    assert sum(first) / 200 < sum(third) / 200 < sum(late) / 200


def test_min_replicas_is_refused_on_redis_cluster_in_one_line() -> None:
    with pytest.raises(ConfigError, match="ROUTER_MIN_REPLICAS is not supported on Redis Cluster"):
        load_settings(
            {"REDIS_URL": "redis://h:7000/0?cluster=true", "ROUTER_PREFIX": "router:{a}:", "ROUTER_MIN_REPLICAS": "1"}
        )


def test_min_replicas_out_of_range_names_the_setting() -> None:
    with pytest.raises(ConfigError, match="min_replicas must be an integer from 0 to 100"):
        load_settings({"ROUTER_MIN_REPLICAS": "-1"})

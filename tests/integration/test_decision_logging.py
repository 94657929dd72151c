"""The worker's decision log line: off at the default level (the decision stream carries every
decision), back at debug. Real Redis, an in-process worker, its real log set-up."""

from __future__ import annotations

import pytest
import redis
import structlog

from streams.clients import Dispatcher, Slot
from streams.keys import Keys
from worker import routing
from worker.logs import configure
from worker.routing import RoutingWorker
from worker.settings import Settings
from worker.signals import StopFlag


def _route_one_task(redis_url: str, prefix: str, capsys: pytest.CaptureFixture[str]) -> tuple[RoutingWorker, str]:
    r = redis.Redis.from_url(redis_url)
    keys = Keys(prefix)
    Slot(r, slot_id="s1", model="haiku", keys=keys).free()
    Dispatcher(r, keys).publish_task("t1", priority=50, requires={})
    settings = Settings(redis_url=redis_url, prefix=prefix, consumer="w1", block_ms=50)
    worker = RoutingWorker(settings, redis.Redis.from_url(redis_url), stop=StopFlag())
    for _ in range(20):
        if worker.processed >= 2:
            break
        worker.step()
    return worker, capsys.readouterr().err


@pytest.fixture(autouse=True)
def _fresh_logger(monkeypatch: pytest.MonkeyPatch) -> object:
    # the worker's module logger caches its level and output on first use (configure's
    # cache_logger_on_first_use): each test gets one that follows its own configure()
    monkeypatch.setattr(routing, "log", structlog.get_logger("router.worker"))
    yield
    structlog.reset_defaults()


def test_the_default_level_logs_no_line_per_decision(
    redis_url: str, prefix: str, capsys: pytest.CaptureFixture[str]
) -> None:
    configure(Settings().log_level)
    worker, err = _route_one_task(redis_url, prefix, capsys)
    assert worker.decisions == 1  # the decision was made and counted
    assert '"leading"' in err  # what the worker does is still logged at info
    assert '"decision"' not in err


def test_debug_logs_each_decision(redis_url: str, prefix: str, capsys: pytest.CaptureFixture[str]) -> None:
    configure("debug")
    worker, err = _route_one_task(redis_url, prefix, capsys)
    assert worker.decisions == 1
    assert err.count('"event":"decision"') == 1
    assert '"task_id":"t1"' in err

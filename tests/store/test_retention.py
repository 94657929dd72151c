"""Retention deletes only rows older than the configured age, run once or as the RQ job."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis
from rq import SimpleWorker
from rq.serializers import JSONSerializer
from sqlalchemy import Engine, func, select

from store import jobs
from store.records import decision_row, usage_row
from store.schema import usage
from store.writer import insert_decisions, insert_usage
from worker.cli import main
from worker.settings import Settings

pytestmark = pytest.mark.integration

NOW = datetime.now(tz=UTC)


def _seed(engine: Engine, synthetic: Callable[..., dict[str, Any]]) -> None:
    """Three decisions 40 days old, two 5 days old; usage for one of each."""
    ages = {"old-0": 40, "old-1": 40, "old-2": 40, "new-0": 5, "new-1": 5}
    rows, reports = [], []
    for i, (decision_id, days) in enumerate(ages.items()):
        at_ms = int((NOW - timedelta(days=days)).timestamp() * 1000)
        doc = {**synthetic(i, decided_at_ms=at_ms), "decision_id": decision_id, "decided_at": at_ms}
        rows.append(decision_row(doc, stream_id=None, recorded_at=NOW))
        if decision_id.endswith("-0"):
            report = {
                "decision_id": decision_id,
                "task_id": doc["task_id"],
                "slot_id": "s",
                "model": "haiku",
                "account": "default",
                "input_tokens": 1,
                "output_tokens": 1,
                "cost_usd": 0.01,
                "event_id": f"{at_ms}-9",
                "at": at_ms + 1000,
            }
            reports.append(usage_row(report, stream_id=None, recorded_at=NOW))
    with engine.begin() as conn:
        insert_decisions(conn, rows)
        insert_usage(conn, reports)


def _usage_count(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(usage)).scalar_one())


def test_retention_deletes_only_old_rows(
    engine: Engine, database_url: str, kit: Any, synthetic: Callable[..., dict[str, Any]]
) -> None:
    _seed(engine, synthetic)
    result = jobs.run_retention(database_url, days=30)
    assert (result["decisions_deleted"], result["usage_deleted"]) == (3, 1)
    assert sorted(kit.ids()) == ["new-0", "new-1"]
    assert _usage_count(engine) == 1
    assert jobs.run_retention(database_url, days=30)["decisions_deleted"] == 0  # idempotent


def test_retention_command(
    engine: Engine,
    settings: Settings,
    kit: Any,
    synthetic: Callable[..., dict[str, Any]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    _seed(engine, synthetic)
    assert main(["retention", "--days", "4", "--database-url", settings.database_url]) == 0
    assert "deleted 5 decision(s)" in capsys.readouterr().out
    assert kit.count() == 0


def test_retention_runs_as_scheduled_rq_job(
    r: redis.Redis, engine: Engine, settings: Settings, kit: Any, synthetic: Callable[..., dict[str, Any]]
) -> None:
    import threading

    _seed(engine, synthetic)
    jobs.configure(database_url=settings.database_url, redis_url=settings.redis_url)
    ticker = jobs.RetentionTicker(r, prefix=settings.prefix, days=30, every_s=3600, stop=threading.Event())
    assert ticker.tick() is True
    assert ticker.tick() is False  # once per interval, however many rq-workers tick
    queue = jobs.job_queue(r, settings.prefix)
    try:
        SimpleWorker([queue], connection=r, serializer=JSONSerializer).work(burst=True)
        assert sorted(kit.ids()) == ["new-0", "new-1"]
    finally:
        queue.delete(delete_jobs=True)

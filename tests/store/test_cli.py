"""The store's commands: migrations, listing, and clear errors (exit 2, no traceback) on bad input."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from typing import Any

import orjson
import pytest
import redis
from sqlalchemy import inspect

from store.migrate import VERSION_TABLE, current_revision, head_revision
from streams.keys import Keys
from worker.cli import main
from worker.recorder import Recorder
from worker.settings import Settings

pytestmark = pytest.mark.integration


def test_db_upgrade_is_idempotent(database_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    from store.db import make_engine

    for _ in range(2):
        assert main(["db", "upgrade", "--database-url", database_url]) == 0
    engine = make_engine(database_url)
    try:
        tables = set(inspect(engine).get_table_names())
        assert {"model_routing_decisions", "model_routing_usage", VERSION_TABLE} <= tables
        indexes = {ix["name"] for ix in inspect(engine).get_indexes("model_routing_decisions")}
        assert {"ix_mrd_task_decided", "ix_mrd_decided_at", "ix_mrd_model_layer_decided"} <= indexes
        assert current_revision(engine) == head_revision()
    finally:
        engine.dispose()


def test_decisions_lists_with_filters(
    r: redis.Redis,
    prefix: str,
    settings: Settings,
    kit: Any,
    make_recorder: Callable[..., Recorder],
    synthetic: Callable[..., dict[str, Any]],
    add: Callable[..., None],
    capsys: pytest.CaptureFixture[str],
) -> None:
    import time

    now_ms = int(time.time() * 1000)
    add(r, Keys(prefix).decisions, [synthetic(i, decided_at_ms=now_ms - 60_000) for i in range(30)])
    add(r, Keys(prefix).decisions, [{**synthetic(99), "decided_at": now_ms - 3 * 3600_000}])  # too old for 1h
    kit.drain_until(make_recorder(), lambda: kit.count() == 31, what="31 rows")
    conn = ["--database-url", settings.database_url]
    capsys.readouterr()
    assert main(["decisions", "--since", "1h", "--model", "haiku", "--layer", "build", "--json", *conn]) == 0
    found = [orjson.loads(line) for line in capsys.readouterr().out.splitlines()]
    expected = {f"s-{i}" for i in range(30) if i % 3 == 1}  # assigned (haiku) and layer build
    assert {d["decision_id"] for d in found} == expected
    assert all(d["cost_basis"] == "estimate" for d in found)
    assert main(["decisions", "--since", "1h", "--outcome", "await_slot", *conn]) == 0
    assert "10 decision(s) since" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["decisions", "--since", "yesterday"], "is not a duration"),
        (["decisions", "--outcome", "lost"], "invalid choice"),
        (["decisions", "--limit", "0"], "must be positive"),
        (["retention", "--days", "-3"], "must be positive"),
        (["explain"], "TASK_ID"),
    ],
)
def test_bad_input_exits_2_without_traceback(argv: list[str], message: str) -> None:
    proc = subprocess.run([sys.executable, "-m", "worker.cli", *argv], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert message in proc.stderr and "Traceback" not in proc.stderr


def test_unreachable_database_is_a_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    url = "postgresql+psycopg://postgres@127.0.0.1:1/test"
    assert main(["decisions", "--database-url", url]) == 2
    err = capsys.readouterr().err
    assert "cannot read the decision store" in err and "Traceback" not in err

"""An await_slot decision's queue position and ETA reach SQL (migration 0003) and come back with it."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
import redis
from sqlalchemy import Engine, inspect

from store.queries import decisions_for_task
from store.records import BadRecord, decision_row
from store.schema import DECISIONS_TABLE, decisions
from streams.keys import Keys
from worker.recorder import Recorder

pytestmark = pytest.mark.integration


def test_the_migrated_table_has_every_column_of_the_schema(engine: Engine) -> None:
    migrated = {c["name"]: c["nullable"] for c in inspect(engine).get_columns(DECISIONS_TABLE)}
    assert migrated == {c.name: c.nullable for c in decisions.columns}
    assert migrated["position"] is True and migrated["eta_s"] is True


def test_position_and_eta_are_stored_and_read_back(
    r: redis.Redis,
    prefix: str,
    engine: Engine,
    kit: Any,
    make_recorder: Callable[..., Recorder],
    synthetic: Callable[..., dict[str, Any]],
    add: Callable[..., None],
) -> None:
    waiting = {**synthetic(0), "position": 3, "eta_s": 241.5}  # synthetic 0 is an await_slot
    unmeasured = {**synthetic(3), "position": 1, "eta_s": None}
    assigned = synthetic(1)  # no queue place at all, as every record before v1.1
    add(r, Keys(prefix).decisions, [waiting, unmeasured, assigned])
    kit.drain_until(make_recorder(), lambda: kit.count() == 3, what="three rows")
    (w,) = decisions_for_task(engine, waiting["task_id"])
    assert (w.outcome, w.position, w.eta_s) == ("await_slot", 3, 241.5)
    assert w.to_record()["position"] == 3 and w.to_record()["eta_s"] == 241.5
    (u,) = decisions_for_task(engine, unmeasured["task_id"])
    assert (u.position, u.eta_s) == (1, None)
    (a,) = decisions_for_task(engine, assigned["task_id"])
    assert (a.position, a.eta_s) == (None, None)


@pytest.mark.parametrize(
    ("position", "eta_s"), [(0, 1.0), (-1, 1.0), ("3", 1.0), (True, 1.0), (1, "soon"), (1, float("inf"))]
)
def test_a_malformed_queue_place_is_a_bad_record(
    synthetic: Callable[..., dict[str, Any]], position: Any, eta_s: Any
) -> None:
    doc = {**synthetic(0), "position": position, "eta_s": eta_s}
    with pytest.raises(BadRecord):
        decision_row(doc, stream_id=None, recorded_at=datetime(2026, 12, 8, tzinfo=UTC))

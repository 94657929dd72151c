"""The recorder's stream housekeeping: trimming only what it acknowledged, keeping a tail for ops;
usage that arrives before its decision."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import orjson
import pytest
import redis

from store.queries import decisions_for_task
from streams.keys import RECORDER_GROUP, Keys
from worker.recorder import Recorder
from worker.settings import Settings

pytestmark = pytest.mark.integration


def test_trim_keeps_the_tail_for_ops(
    r: redis.Redis,
    prefix: str,
    settings: Settings,
    kit: Any,
    make_recorder: Callable[..., Recorder],
    synthetic: Callable[..., dict[str, Any]],
    add: Callable[..., None],
) -> None:
    keys = Keys(prefix)
    add(r, keys.decisions, [synthetic(i) for i in range(300)])
    rec = make_recorder(settings=replace(settings, decisions_keep=50, recorder_batch=64))
    kit.drain_until(rec, lambda: kit.count() == 300 and r.xlen(keys.decisions) == 50, what="all stored, 50 kept")
    newest = [orjson.loads(f[b"data"])["decision_id"] for _, f in r.xrange(keys.decisions)]
    assert newest == [f"s-{i}" for i in range(250, 300)]


def test_trim_never_drops_unacknowledged_entries(
    r: redis.Redis,
    prefix: str,
    settings: Settings,
    make_recorder: Callable[..., Recorder],
    synthetic: Callable[..., dict[str, Any]],
    add: Callable[..., None],
) -> None:
    keys = Keys(prefix)
    add(r, keys.decisions, [synthetic(i) for i in range(100)])
    r.xgroup_create(keys.decisions, RECORDER_GROUP, id="0", mkstream=True)
    r.xgroup_create(keys.usage, RECORDER_GROUP, id="0", mkstream=True)
    # another recorder read 60 and acknowledged only the first 30 before it died
    [(_, read)] = r.xreadgroup(RECORDER_GROUP, "gone", {keys.decisions: ">"}, count=60)
    r.xack(keys.decisions, RECORDER_GROUP, *[i for i, _ in read[:30]])
    rec = make_recorder(settings=replace(settings, decisions_keep=0))
    rec._trim_streams()
    remaining = [i for i, _ in r.xrange(keys.decisions)]
    assert len(remaining) == 70  # the 30 pending and the 40 never delivered are all still there
    assert remaining[0] == read[30][0]


def test_usage_before_its_decision_is_kept_and_joined(
    r: redis.Redis,
    prefix: str,
    engine: Any,
    kit: Any,
    make_recorder: Callable[..., Recorder],
    synthetic: Callable[..., dict[str, Any]],
    add: Callable[..., None],
) -> None:
    keys = Keys(prefix)
    decision = synthetic(1)
    report = {
        "decision_id": decision["decision_id"],
        "task_id": decision["task_id"],
        "slot_id": "slot-1",
        "model": "haiku",
        "account": "default",
        "input_tokens": 10,
        "output_tokens": 20,
        "cost_usd": 0.5,
        "event_id": "1-1",
        "at": decision["decided_at"] + 5,
    }
    add(r, keys.usage, [report])
    rec = make_recorder()
    rec.drain()
    assert kit.count() == 0 and r.xpending(keys.usage, RECORDER_GROUP)["pending"] == 0
    add(r, keys.usage, [report])  # a redelivered report is the same row
    add(r, keys.decisions, [decision])
    kit.drain_until(rec, lambda: kit.count() == 1, what="the decision stored")
    [stored] = decisions_for_task(engine, decision["task_id"])
    assert stored.actual_cost_usd == 0.5 and stored.cost_basis == "actual"

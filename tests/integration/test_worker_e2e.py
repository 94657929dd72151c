"""End to end through the real Redis, with `router worker` running as a separate process."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
import redis
from support.processes import wait_for

from streams.clients import Dispatcher, Slot
from streams.keys import Keys

pytestmark = pytest.mark.integration

PRIORITIES = [95, 90, 80, 70, 60, 50, 40, 30, 20, 10]


def _docs(r: redis.Redis, stream: str) -> list[dict[str, Any]]:
    return [orjson.loads(fields[b"data"]) for _, fields in r.xrange(stream)]


def _publish_atomically(r: redis.Redis, keys: Keys, docs: list[dict[str, Any]]) -> None:
    """One MULTI/EXEC, so the worker reads all of them in one batch."""
    pipe = r.pipeline(transaction=True)
    for doc in docs:
        pipe.xadd(keys.events, {"data": orjson.dumps(doc)})
    pipe.execute()


def _seed_docs() -> list[dict[str, Any]]:
    slots = [("o1", "opus"), ("s1", "sonnet"), ("h1", "haiku"), ("h2", "haiku")]
    docs: list[dict[str, Any]] = [{"type": "slot.free", "slot_id": s, "model": m} for s, m in slots]
    for i, priority in enumerate(PRIORITIES):
        requires = {"reasoning": 7} if i < 2 else {}
        docs.append({"type": "task.pending", "task_id": f"t{i}", "priority": priority, "requires": requires})
    return docs


def test_seed_acceptance_through_redis(r: redis.Redis, keys: Keys, start_worker: Any) -> None:
    start_worker()
    _publish_atomically(r, keys, _seed_docs())
    statuses = wait_for(lambda: len(_docs(r, keys.status)) >= 10 and _docs(r, keys.status), what="10 status messages")
    first = {s["task_id"]: s for s in statuses}
    assert {t: (s["type"], s.get("model")) for t, s in first.items() if s["type"] == "assigned"} == {
        "t0": ("assigned", "opus"),
        "t1": ("assigned", "sonnet"),
        "t2": ("assigned", "haiku"),
        "t3": ("assigned", "haiku"),
    }
    assert sorted(t for t, s in first.items() if s["type"] == "await_slot") == [f"t{i}" for i in range(4, 10)]
    assert _docs(r, keys.assign("o1"))[0]["task_id"] == "t0"
    assert _docs(r, keys.assign("s1"))[0]["task_id"] == "t1"

    # the haiku slots report free one after the other; waiting tasks follow in priority order
    handed_out = []
    for turn in range(6):
        slot_id = "h1" if turn % 2 == 0 else "h2"
        Slot(r, slot_id=slot_id, model="haiku", keys=keys).free()
        wanted = 4 + turn + 1
        wait_for(
            lambda n=wanted: sum(1 for s in _docs(r, keys.status) if s["type"] == "assigned") >= n,
            what=f"assignment {wanted}",
        )
        latest = [s for s in _docs(r, keys.status) if s["type"] == "assigned"][-1]
        assert latest["slot_id"] == slot_id and latest["model"] == "haiku"
        handed_out.append(latest["task_id"])
    assert handed_out == ["t4", "t5", "t6", "t7", "t8", "t9"]
    # every decision is on the decision stream; opus only ever took the top task
    decisions = _docs(r, keys.decisions)
    assert len(decisions) == 16  # 10 first decisions + 6 later assignments
    assert [d["task_id"] for d in decisions if d["chosen_model"] == "opus"] == ["t0"]


BAD_ENTRIES: list[tuple[bytes | None, str]] = [
    (b"{not json", "not valid JSON"),
    (b'{"type": "task.pending", "priority": 5, "requires": {}}', "missing required field 'task_id'"),
    (b'{"type": "task.pending", "task_id": "x", "priority": "high", "requires": {}}', "priority must be an integer"),
    (b'{"type": "task.pending", "task_id": "x", "priority": 500, "requires": {}}', "priority must be 0..100"),
    (b'{"type": "task.exploded", "task_id": "x"}', "unknown or missing type 'task.exploded'"),
    (b'{"type": "slot.free", "slot_id": "s", "model": "gpt-99"}', "unknown model 'gpt-99'"),
    (
        b'{"type": "task.pending", "task_id": "big", "priority": 5, "requires": {}, "title": "' + b"x" * 70_000 + b'"}',
        "over the 65536-byte limit",
    ),
    (None, "no 'data' field"),
]


def test_bad_input_is_dead_lettered_and_routing_goes_on(r: redis.Redis, keys: Keys, start_worker: Any) -> None:
    start_worker()
    dispatcher = Dispatcher(r, keys)
    Slot(r, slot_id="h1", model="haiku", keys=keys).free()
    for raw, _ in BAD_ENTRIES:
        r.xadd(keys.events, {"data": raw} if raw is not None else {"other": b"1"})
    dispatcher.publish_task("good-1", priority=50, requires={})
    dead = wait_for(lambda: len(_docs(r, keys.dead)) >= len(BAD_ENTRIES) and _docs(r, keys.dead), what="dead letters")
    for doc, (raw, reason) in zip(dead, BAD_ENTRIES, strict=True):
        assert reason in doc["error"], (reason, doc["error"])
        if raw is not None and len(raw) < 1000:
            assert doc["raw"] == raw.decode()
    assigned = wait_for(lambda: [s for s in _docs(r, keys.status) if s["task_id"] == "good-1"], what="good task routed")
    assert assigned[0]["type"] == "assigned" and assigned[0]["slot_id"] == "h1"
    # every entry, bad or good, was acknowledged
    assert r.xpending(keys.events, "router")["pending"] == 0


def test_dry_run_publishes_only_flagged_decision_records(r: redis.Redis, keys: Keys, start_worker: Any) -> None:
    start_worker("--dry-run")
    _publish_atomically(r, keys, [*_seed_docs(), {"type": "task.pending", "task_id": "bad"}])
    decisions = wait_for(lambda: len(_docs(r, keys.decisions)) >= 10 and _docs(r, keys.decisions), what="dry decisions")
    assert all(d["dry_run"] is True and d["decision_id"].startswith("dry:") for d in decisions)
    assert {d["task_id"]: d["chosen_model"] for d in decisions if d["outcome"] == "assigned"} == {
        "t0": "opus",
        "t1": "sonnet",
        "t2": "haiku",
        "t3": "haiku",
    }
    for stream in (keys.status, keys.dead, keys.assign("o1"), keys.assign("h1")):
        assert r.exists(stream) == 0, stream
    # the live group and the live ledger are untouched: a live router would still see everything
    assert not r.exists(keys.state(dry_run=False).slots)


def test_sigterm_finishes_and_exits_zero(r: redis.Redis, keys: Keys, start_worker: Any) -> None:
    proc = start_worker()
    Dispatcher(r, keys).publish_task("t-term", priority=10, requires={})
    wait_for(lambda: _docs(r, keys.status), what="a status message")
    assert proc.terminate() == 0
    assert r.get(keys.state(dry_run=False).leader) is None  # the lease was released for a standby

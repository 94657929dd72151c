"""streams.clients against the real Redis, without a router: the slot's consumer group (what a
restart gets back and what it never does), its acknowledgements, and following a stream from now.
The end-to-end version, with a live worker and a slot process killed with SIGKILL, is
tests/integration/test_slot_restart.py."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
import redis

from streams.clients import SLOT_GROUP, Dispatcher, Slot
from streams.codec import encode
from streams.connection import NotReplicated
from streams.keys import Keys

pytestmark = pytest.mark.integration

SLOT_ID = "acct-a/haiku-1"


@pytest.fixture
def keys(prefix: str) -> Keys:
    return Keys(prefix)


def _slot(r: redis.Redis, keys: Keys) -> Slot:
    """A slot process's client; making a second one for the same slot id is a restart."""
    return Slot(r, slot_id=SLOT_ID, model="haiku", account="acct-a", keys=keys)


def _assign(r: redis.Redis, keys: Keys, task_id: str) -> str:
    """What the router's atomic step writes for an assignment."""
    doc = {"type": "assignment", "task_id": task_id, "slot_id": SLOT_ID, "model": "haiku", "task": {"n": task_id}}
    return r.xadd(keys.assign(SLOT_ID), {"data": encode(doc)}).decode()


def _events(r: redis.Redis, keys: Keys) -> list[dict[str, Any]]:
    return [orjson.loads(fields[b"data"]) for _, fields in r.xrange(keys.events)]


def _pending(r: redis.Redis, keys: Keys) -> int:
    return int(r.xpending(keys.assign(SLOT_ID), SLOT_GROUP)["pending"])


def test_a_slot_restarted_mid_task_gets_that_assignment_back_and_does_not_announce_itself_free(
    r: redis.Redis, keys: Keys
) -> None:
    first = _slot(r, keys)
    assert first.resume() is None  # a fresh slot: nothing to resume, so it announces itself free
    _assign(r, keys, "t1")
    assert first.next_assignment(block_ms=1000)["task_id"] == "t1"
    del first  # killed mid-task: no completion, no acknowledgement

    restarted = _slot(r, keys)
    assignment = restarted.resume()
    assert assignment is not None and assignment["task_id"] == "t1" and assignment["task"] == {"n": "t1"}
    assert [e["type"] for e in _events(r, keys)] == ["slot.free"]  # only the first start's
    assert restarted.next_assignment(block_ms=10) is None  # and it is not handed out twice


def test_a_slot_restarted_after_completing_gets_none_of_its_old_assignments(r: redis.Redis, keys: Keys) -> None:
    first = _slot(r, keys)
    first.resume()
    for n in range(5):
        _assign(r, keys, f"t{n}")
        assignment = first.next_assignment(block_ms=1000)
        assert assignment is not None
        first.complete(assignment["task_id"], input_tokens=10, output_tokens=2, cost_usd=0.001)

    restarted = _slot(r, keys)
    assert restarted.resume() is None
    assert restarted.next_assignment(block_ms=10) is None
    assert _events(r, keys)[-1] == {"type": "slot.free", "slot_id": SLOT_ID, "model": "haiku", "account": "acct-a"}


def test_an_assignment_made_while_the_slot_was_down_is_resumed_not_lost(r: redis.Redis, keys: Keys) -> None:
    first = _slot(r, keys)
    first.resume()
    del first  # stopped while free; the router, not knowing yet, assigns it a task
    _assign(r, keys, "while-down")

    restarted = _slot(r, keys)
    assignment = restarted.resume()
    assert assignment is not None and assignment["task_id"] == "while-down"
    assert [e["type"] for e in _events(r, keys)] == ["slot.free"]


def test_complete_reports_usage_and_acknowledges_in_one_step(r: redis.Redis, keys: Keys) -> None:
    slot = _slot(r, keys)
    slot.resume()
    _assign(r, keys, "t1")
    slot.next_assignment(block_ms=1000)
    assert _pending(r, keys) == 1
    slot.complete("t1", input_tokens=1200, output_tokens=300, cost_usd=0.0027, outcome="succeeded")
    assert _pending(r, keys) == 0
    assert _events(r, keys)[-1]["completed"] == {
        "task_id": "t1",
        "input_tokens": 1200,
        "output_tokens": 300,
        "cost_usd": 0.0027,
        "outcome": "succeeded",  # further keyword arguments go into `completed` as they are
    }


def test_complete_leaves_out_what_was_not_measured(r: redis.Redis, keys: Keys) -> None:
    slot = _slot(r, keys)
    slot.complete("t1")
    assert _events(r, keys)[-1]["completed"] == {"task_id": "t1"}


@pytest.mark.parametrize("ending", ["free", "gone"])
def test_free_and_gone_release_what_the_slot_holds(r: redis.Redis, keys: Keys, ending: str) -> None:
    slot = _slot(r, keys)
    slot.resume()
    _assign(r, keys, "t1")
    slot.next_assignment(block_ms=1000)
    getattr(slot, ending)()
    assert _pending(r, keys) == 0
    assert _slot(r, keys).resume() is None


def test_a_fresh_client_that_only_announces_free_releases_what_an_earlier_run_held(r: redis.Redis, keys: Keys) -> None:
    """A slot announcing itself free tells the router it holds nothing: its group agrees."""
    first = _slot(r, keys)
    first.resume()
    _assign(r, keys, "t1")
    first.next_assignment(block_ms=1000)
    _slot(r, keys).free()
    assert _pending(r, keys) == 0


def test_a_pending_assignment_trimmed_away_is_passed_over(r: redis.Redis, keys: Keys) -> None:
    first = _slot(r, keys)
    first.resume()
    entry_id = _assign(r, keys, "t1")
    first.next_assignment(block_ms=1000)
    r.xdel(keys.assign(SLOT_ID), entry_id)  # as MAXLEN trimming would, while it was pending

    restarted = _slot(r, keys)
    assert restarted.resume() is None
    assert _pending(r, keys) == 0


def test_an_unreadable_assignment_is_acknowledged_and_skipped(r: redis.Redis, keys: Keys) -> None:
    slot = _slot(r, keys)
    slot.resume()
    r.xadd(keys.assign(SLOT_ID), {"data": b"not json"})
    r.xadd(keys.assign(SLOT_ID), {"other": b"no data field"})
    _assign(r, keys, "t1")
    assignment = slot.next_assignment(block_ms=1000)
    assert assignment is not None and assignment["task_id"] == "t1"
    assert slot.held and _pending(r, keys) == 1


def test_a_deleted_assignment_stream_is_joined_again_from_its_start(r: redis.Redis, keys: Keys) -> None:
    slot = _slot(r, keys)
    slot.resume()
    r.delete(keys.assign(SLOT_ID))  # group and all
    _assign(r, keys, "t1")  # a new stream, without the group, written after the slot's last read
    assignment = slot.next_assignment(block_ms=1000)
    assert assignment is not None and assignment["task_id"] == "t1"
    assert _pending(r, keys) == 1


def test_a_plain_xread_reader_still_sees_every_assignment(r: redis.Redis, keys: Keys) -> None:
    """The group is the client's own: PROTOCOL.md's `XREAD` from the last id keeps working."""
    slot = _slot(r, keys)
    slot.resume()
    for n in range(3):
        _assign(r, keys, f"t{n}")
    slot.next_assignment(block_ms=1000)
    reply = r.xread({keys.assign(SLOT_ID): "0"})
    assert [orjson.loads(f[b"data"])["task_id"] for _, f in reply[0][1]] == ["t0", "t1", "t2"]


def test_following_status_from_now_misses_nothing_published_before_the_first_read(r: redis.Redis, keys: Keys) -> None:
    r.xadd(keys.status, {"data": encode({"type": "assigned", "task_id": "old"})})
    statuses = Dispatcher(r, keys).follow_status(block_ms=100)
    r.xadd(keys.status, {"data": encode({"type": "assigned", "task_id": "new"})})  # before any read
    _, status = next(statuses)
    assert status["task_id"] == "new"


def test_a_slot_whose_stream_cannot_be_joined_still_announces_itself_free(r: redis.Redis, keys: Keys) -> None:
    r.set(keys.assign(SLOT_ID), "not a stream")
    _slot(r, keys).free()
    assert [e["type"] for e in _events(r, keys)] == ["slot.free"]
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        _slot(r, keys).next_assignment(block_ms=10)


def test_an_assignment_published_again_after_a_failover_is_skipped(r: redis.Redis, keys: Keys) -> None:
    slot = _slot(r, keys)
    assert slot.resume() is None
    doc = {"type": "assignment", "task_id": "t1", "slot_id": SLOT_ID, "model": "haiku", "decision_id": "d-1"}
    r.xadd(keys.assign(SLOT_ID), {"data": encode(doc)})
    first = slot.next_assignment(block_ms=100)
    assert first is not None and first["task_id"] == "t1"
    slot.complete("t1")
    # the new primary publishes the same decision again (its outbox was replicated, the publication not)
    r.xadd(keys.assign(SLOT_ID), {"data": encode(doc)})
    _assign(r, keys, "t2")
    second = slot.next_assignment(block_ms=100)
    assert second is not None and second["task_id"] == "t2"
    assert _pending(r, keys) == 1  # the repeat was acknowledged and passed over; t2 is held


def test_a_durable_dispatcher_without_replicas_gives_up_with_not_replicated(
    r: redis.Redis, keys: Keys, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("streams.clients.DURABLE_RETRY_S", 0.2)
    dispatcher = Dispatcher(r, keys, replicas=1)
    with pytest.raises(NotReplicated, match="WAIT saw 0 of 1 replicas"):
        dispatcher.publish_task("t1", priority=50)
    assert len(_events(r, keys)) >= 1  # published on the primary, each try: task.pending is idempotent

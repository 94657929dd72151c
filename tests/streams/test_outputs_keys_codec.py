"""streams/codec.py, streams/keys.py and streams/outputs.py (the wire form of the router's effects)."""

from __future__ import annotations

import base64
from typing import Any

import fakeredis
import orjson
import pytest
import redis
from redis.crc import key_slot

from router.engine import Cancelled, LedgerChanges, UsageReported
from router.values import (
    Alternative,
    ChosenSlot,
    Decision,
    Outcome,
    ReasonCode,
    Task,
    Thresholds,
    Usage,
    Verdict,
)
from streams.codec import decode, encode, entry_data
from streams.commit import AtomicStep, Committer
from streams.connection import _send, mask_url, parse_sentinel_url, refused_by_redis
from streams.keys import DEFAULT_PREFIX, Keys
from streams.outputs import (
    StreamCaps,
    add_effects,
    add_ledger_changes,
    assignment_message,
    dead_letter,
    decision_record_json,
    status_message,
    usage_message,
)

# -- codec --------------------------------------------------------------------------------------


def test_codec_round_trip_is_compact_utf8_json() -> None:
    doc = {"type": "task.pending", "title": "héllo ✓", "n": 1, "x": None, "l": [1.5, True]}
    raw = encode(doc)
    assert isinstance(raw, bytes)
    assert raw == '{"type":"task.pending","title":"héllo ✓","n":1,"x":null,"l":[1.5,true]}'.encode()
    assert decode(raw) == doc
    assert decode(raw.decode()) == doc


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({b"data": b"{}"}, b"{}"),
        ({"data": b"{}"}, b"{}"),
        ({"data": "{}"}, b"{}"),
        ({b"other": b"x"}, None),
        ({}, None),
    ],
)
def test_entry_data(fields: dict[Any, Any], expected: bytes | None) -> None:
    assert entry_data(fields) == expected


# -- keys ---------------------------------------------------------------------------------------


def test_default_keys_are_the_wire_names() -> None:
    k = Keys()
    assert k.prefix == DEFAULT_PREFIX == "router:"
    assert (k.events, k.status, k.decisions, k.dead, k.usage) == (
        "router:events",
        "router:status",
        "router:decisions",
        "router:dead",
        "router:usage",
    )
    assert k.assign("slot-7") == "router:assign:slot-7"


def test_state_keys_live_and_dry_run_are_separate() -> None:
    live, dry = Keys().state(dry_run=False), Keys().state(dry_run=True)
    assert live.leader == "router:leader" and dry.leader == "router:dry-run:leader"
    assert live.slots == "router:ledger:slots" and dry.slots == "router:dry-run:ledger:slots"
    live_keys = {live.slots, live.waiting, live.assigned, live.ev_window, live.utilisation, live.leader, live.fence}
    dry_keys = {dry.slots, dry.waiting, dry.assigned, dry.ev_window, dry.utilisation, dry.leader, dry.fence}
    assert len(live_keys) == 7 and len(dry_keys) == 7 and not live_keys & dry_keys


def test_hash_tag_prefix_puts_every_key_in_one_cluster_slot() -> None:
    k = Keys("router:{pool-a}:")
    assert k.events == "router:{pool-a}:events"
    assert k.assign("s1") == "router:{pool-a}:assign:s1"
    keys = [k.events, k.status, k.decisions, k.dead, k.usage, k.assign("s1"), k.assign("other")]
    for dry_run in (False, True):
        st = k.state(dry_run=dry_run)
        keys += [st.slots, st.waiting, st.assigned, st.ev_window, st.utilisation, st.leader, st.fence]
    assert {key_slot(key.encode()) for key in keys} == {key_slot(b"pool-a")}
    # without a tag they scatter
    plain = Keys()
    assert len({key_slot(x.encode()) for x in (plain.events, plain.status, plain.decisions)}) > 1


# -- outputs ------------------------------------------------------------------------------------

TASK = Task(
    task_id="t1",
    priority=70,
    requires={"coding": 5},
    layer="design",
    title="Fix",
    fields={"task_id": "t1", "priority": 70, "requires": {"coding": 5}, "title": "Fix", "custom": [1]},
)


def decision(outcome: Outcome = Outcome.ASSIGNED, **kw: Any) -> Decision:
    chosen = ChosenSlot(slot_id="s1", model="sonnet", account="acct", tier=2) if outcome is Outcome.ASSIGNED else None
    defaults: dict[str, Any] = {
        "decision_id": "5-0.1",
        "task": TASK,
        "outcome": outcome,
        "reason_code": ReasonCode.CHEAPEST_CAPABLE if chosen else ReasonCode.NO_FREE_CAPABLE_SLOT,
        "reason": "because",
        "thresholds": Thresholds(ev=0.7, p50=0.5, p90=0.9),
        "decided_at_ms": 1234,
        "chosen": chosen,
        "alternatives": (Alternative(model="sonnet", account="acct", tier=2, verdict=Verdict.CHOSEN, slot_id="s1"),),
        "event_id": "5-0",
    }
    defaults.update(kw)
    return Decision(**defaults)


def test_the_decision_record_on_the_wire_is_to_record_whatever_was_rendered_before() -> None:
    busy = Alternative(
        model="haiku",
        account="acct",
        tier=1,
        verdict=Verdict.BUSY,
        count=12,
        slot_ids=tuple(f"h{i}" for i in range(10)),
    )
    chosen = Alternative(model="sonnet", account="acct", tier=2, verdict=Verdict.CHOSEN, slot_id="s1", detail="é")
    first = decision(alternatives=(chosen, busy))
    second = decision(decision_id="5-0.2", alternatives=(busy,))  # shares the first's grouped verdict
    for d in (first, second, first):
        assert orjson.loads(decision_record_json(d)) == orjson.loads(encode(d.to_record()))
    assert orjson.loads(decision_record_json(second))["alternatives"] == [busy.to_json()]


def test_status_message_for_an_assignment() -> None:
    assert status_message(decision()) == {
        "type": "assigned",
        "task_id": "t1",
        "decision_id": "5-0.1",
        "reason": "because",
        "at": 1234,
        "slot_id": "s1",
        "model": "sonnet",
    }


@pytest.mark.parametrize("outcome", [Outcome.AWAIT_SLOT, Outcome.UNROUTABLE])
def test_status_message_without_a_slot(outcome: Outcome) -> None:
    doc = status_message(decision(outcome))
    assert doc == {"type": outcome.value, "task_id": "t1", "decision_id": "5-0.1", "reason": "because", "at": 1234}


def test_assignment_message_hands_on_the_task_as_received() -> None:
    assert assignment_message(decision()) == {
        "type": "assignment",
        "task_id": "t1",
        "slot_id": "s1",
        "model": "sonnet",
        "account": "acct",
        "decision_id": "5-0.1",
        "task": {"task_id": "t1", "priority": 70, "requires": {"coding": 5}, "title": "Fix", "custom": [1]},
    }


def test_usage_message() -> None:
    effect = UsageReported(
        usage=Usage(task_id="t1", input_tokens=10, output_tokens=3, cost_usd=0.02),
        slot_id="s1",
        model="sonnet",
        account="acct",
        decision_id="5-0.1",
        event_id="9-0",
        at_ms=99,
    )
    assert usage_message(effect) == {
        "decision_id": "5-0.1",
        "task_id": "t1",
        "slot_id": "s1",
        "model": "sonnet",
        "account": "acct",
        "input_tokens": 10,
        "output_tokens": 3,
        "cost_usd": 0.02,
        "event_id": "9-0",
        "at": 99,
    }


def test_dead_letter_keeps_utf8_raw_as_text() -> None:
    assert dead_letter("1-0", '{"type": "é"'.encode(), "not valid JSON: x") == {
        "source_id": "1-0",
        "raw": '{"type": "é"',
        "error": "not valid JSON: x",
    }


def test_dead_letter_base64_encodes_non_utf8_raw() -> None:
    raw = b"\xff\xfe\x00binary"
    doc = dead_letter("2-0", raw, "not valid JSON")
    assert doc["raw_encoding"] == "base64"
    assert base64.b64decode(doc["raw"]) == raw
    assert doc["source_id"] == "2-0" and doc["error"] == "not valid JSON"
    orjson.dumps(doc)  # serialisable


def test_dead_letter_without_data_field() -> None:
    assert dead_letter("3-0", None, "entry has no 'data' field") == {
        "source_id": "3-0",
        "raw": None,
        "error": "entry has no 'data' field",
    }


def _streams(r: fakeredis.FakeRedis) -> dict[str, list[dict[str, Any]]]:
    out = {}
    for key in sorted(k.decode() for k in r.keys("*")):
        if r.type(key) == b"stream":
            out[key] = [decode(f[b"data"]) for _, f in r.xrange(key)]
    return out


def test_add_effects_writes_decision_status_assignment_cancel_and_usage() -> None:
    r = fakeredis.FakeRedis()
    keys = Keys("p:")
    step = AtomicStep(keys.state(dry_run=False).leader)
    usage = UsageReported(
        usage=Usage(task_id="t0"), slot_id="s0", model="haiku", account="a", decision_id=None, event_id="1-0", at_ms=5
    )
    effects = [
        decision(),
        decision(Outcome.AWAIT_SLOT, decision_id="5-0.2"),
        Cancelled(task_id="t7", event_id="6-0", at_ms=7),
        usage,
    ]
    add_effects(step, keys, effects, caps=StreamCaps(), dry_run=False)
    Committer(r).commit(step, fence=None)
    streams = _streams(r)
    assert [d["decision_id"] for d in streams["p:decisions"]] == ["5-0.1", "5-0.2"]
    assert streams["p:decisions"][0] == decision().to_record()
    assert [s["type"] for s in streams["p:status"]] == ["assigned", "await_slot", "cancelled"]
    assert streams["p:status"][2] == {
        "type": "cancelled",
        "task_id": "t7",
        "decision_id": None,
        "reason": "cancelled by the dispatcher while awaiting a slot",
        "at": 7,
    }
    assert streams["p:assign:s1"] == [assignment_message(decision())]
    assert streams["p:usage"] == [usage_message(usage)]


def test_add_effects_in_a_dry_run_writes_decision_records_only() -> None:
    r = fakeredis.FakeRedis()
    keys = Keys("p:")
    step = AtomicStep(keys.state(dry_run=True).leader)
    effects = [decision(dry_run=True), Cancelled(task_id="t7", event_id="6-0", at_ms=7)]
    add_effects(step, keys, effects, caps=StreamCaps(), dry_run=True)
    Committer(r).commit(step, fence=None)
    streams = _streams(r)
    assert list(streams) == ["p:decisions"]
    assert streams["p:decisions"][0]["dry_run"] is True


def test_add_ledger_changes_sets_and_deletes() -> None:
    r = fakeredis.FakeRedis()
    state = Keys("p:").state(dry_run=False)
    r.hset(state.waiting, "gone-task", b"{}")
    r.hset(state.assigned, "old", b"{}")
    r.rpush(state.ev_window, "0.1", "0.2")
    changes = LedgerChanges(
        slots={"s1": {"slot_id": "s1", "state": "free"}},
        waiting={"w1": {"seq": 1}, "gone-task": None},
        assigned={"a1": {"slot_id": "s1"}, "old": None},
        ev_added=[0.3, 0.4],
        utilisation={"acct\x1fhaiku": 0.25},
    )
    step = AtomicStep(state.leader)
    add_ledger_changes(step, state, changes, ev_window=3)
    Committer(r).commit(step, fence=None)
    assert decode(r.hget(state.slots, "s1")) == {"slot_id": "s1", "state": "free"}
    assert set(r.hkeys(state.waiting)) == {b"w1"}
    assert set(r.hkeys(state.assigned)) == {b"a1"}
    assert [float(v) for v in r.lrange(state.ev_window, 0, -1)] == [0.2, 0.3, 0.4]  # capped to the window
    assert float(r.hget(state.utilisation, "acct\x1fhaiku")) == 0.25


@pytest.mark.parametrize(
    ("error", "redis_side"),
    [
        (redis.ConnectionError("Connection refused"), True),
        (redis.TimeoutError("Timeout reading from socket"), True),
        (redis.exceptions.OutOfMemoryError("command not allowed when used memory > 'maxmemory'."), True),
        (redis.exceptions.ReadOnlyError("You can't write against a read only replica."), True),
        (redis.exceptions.NoPermissionError("this user has no permissions to run the 'xadd' command"), True),
        (redis.ResponseError("BUSY Redis is busy running a script."), True),
        (redis.ResponseError("WRONGTYPE router:assign:h1 holds a string, not a stream"), True),
        (redis.ResponseError("ERR wrong number of arguments for 'xadd' command"), False),
        (redis.DataError("Invalid input of type: 'NoneType'"), False),
        (RuntimeError("a bug"), False),
    ],
)
def test_refused_by_redis_tells_redis_side_failures_from_ours(error: Exception, redis_side: bool) -> None:
    assert refused_by_redis(error) is redis_side


def test_a_command_packed_in_one_call_is_the_bytes_redis_py_would_send() -> None:
    """The atomic step's command is packed by hiredis in one call (streams.connection._send); what
    goes on the wire must be exactly what redis-py's own packing would send."""
    conn = redis.Connection()  # never connected: its packer, and a send that records the bytes
    sent: list[bytes] = []
    conn.send_packed_command = lambda packed, check_health=True: sent.append(b"".join(packed))  # type: ignore[method-assign]
    args = ("EVALSHA", "ab12", 2, "k:1", "k:\u00e9\u4e2d", b"\x00\xff\r\n", 0, -5, 2**40, "", "x" * 70_000)
    _send(conn, args)
    assert sent == [b"".join(conn._command_packer.pack(*args))]


def test_a_sentinel_url_names_its_sentinels_service_db_and_password() -> None:
    target = parse_sentinel_url("rediss+sentinel://:pw%40x@a:26380,b/mymaster/2?sentinel_password=s&ssl_ca_certs=/ca")
    assert target.sentinels == (("a", 26380), ("b", 26379))
    assert (target.service, target.db, target.password, target.tls) == ("mymaster", 2, "pw@x", True)
    assert dict(target.options) == {"sentinel_password": "s", "ssl_ca_certs": "/ca"}
    assert mask_url("redis+sentinel://:pw@a:26379/mymaster/0") == "redis+sentinel://:***@a:26379/mymaster/0"

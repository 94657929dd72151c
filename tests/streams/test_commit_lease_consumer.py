"""streams/commit.py (the atomic step and its fencing), streams/lease.py and streams/consumer.py.

Unit tests run on fakeredis (its Lua needs lupa); the same behaviour is checked once more on the
real Redis of tests/conftest.py, marked integration.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import fakeredis
import pytest
import redis

from streams.codec import as_text
from streams.commit import AtomicStep, Committer, FencedOut
from streams.consumer import GroupReader
from streams.lease import Lease


@pytest.fixture
def fr() -> Iterator[fakeredis.FakeRedis]:
    r = fakeredis.FakeRedis()
    yield r
    r.flushall()


# -- AtomicStep ---------------------------------------------------------------------------------


def test_atomic_step_groups_writes_by_key_leader_first_acks_last() -> None:
    step = AtomicStep("L")
    step.xack("events", "grp", "1-0")
    step.xadd("s", b"1")
    step.hset("h", "f", b"v")
    step.xadd("s", b"2")
    step.hdel("h", "g")
    step.xack("events", "grp", "2-0")
    step.rpush_capped("list", "0.5", keep=3)
    step.xadd("capped", b"3", maxlen=10)
    step.hset("h", "g", b"w")  # a field set after its delete keeps the last word
    step.rpush_capped("list", "0.7", keep=3)
    keys, args = step.layout()
    assert keys == ["L", "s", "capped", "h", "list", "events"]
    assert args == [
        "X", 2, 0, 2, b"1", b"2",
        "X", 3, 10, 1, b"3",
        "H", 4, 2, "f", b"v", "g", b"w",
        "R", 5, 3, 2, "0.5", "0.7",
        "A", 6, "grp", 2, "1-0", "2-0",
    ]  # fmt: skip


def test_atomic_step_sends_deletes_after_sets_of_other_fields() -> None:
    step = AtomicStep("L")
    step.hset("h", "a", b"1")
    step.hdel("h", "b")
    step.hset("h", "b", b"2")
    step.hdel("h", "a")
    assert step.layout()[1] == ["H", 2, 1, "b", b"2", "D", 2, 1, "a"]


def test_empty_step_makes_no_call(fr: fakeredis.FakeRedis) -> None:
    fr.set("L", "someone-else")
    Committer(fr).commit(AtomicStep("L"), fence="me")  # nothing to write: not even the fence is checked
    assert fr.keys("*") == [b"L"]


# -- Committer ----------------------------------------------------------------------------------


def _full_step() -> AtomicStep:
    step = AtomicStep("L")
    step.xadd("out", b'{"n":1}')
    step.xadd("capped", b"a", maxlen=1)
    step.hset("h", "f1", b"v1")
    step.hset("h", "f2", b"v2")
    step.hdel("h", "f1")
    step.rpush_capped("ev", "1", keep=2)
    step.rpush_capped("ev", "2", keep=2)
    step.rpush_capped("ev", "3", keep=2)
    return step


def _check_full_step(r: redis.Redis) -> None:
    assert [f[b"data"] for _, f in r.xrange("out")] == [b'{"n":1}']
    assert r.hgetall("h") == {b"f2": b"v2"}
    assert r.lrange("ev", 0, -1) == [b"2", b"3"]
    assert r.xlen("capped") >= 1


def test_commit_runs_every_operation(fr: fakeredis.FakeRedis) -> None:
    Committer(fr).commit(_full_step(), fence=None)
    _check_full_step(fr)


def test_commit_with_the_matching_fence_writes(fr: fakeredis.FakeRedis) -> None:
    fr.set("L", "7:me")
    Committer(fr).commit(_full_step(), fence="7:me")
    _check_full_step(fr)


@pytest.mark.parametrize("holder", ["8:other", None])
def test_commit_is_fenced_out_when_the_leader_key_holds_another_value(
    fr: fakeredis.FakeRedis, holder: str | None
) -> None:
    if holder is not None:
        fr.set("L", holder)
    with pytest.raises(FencedOut, match="FENCED leadership is now") as info:
        Committer(fr).commit(_full_step(), fence="7:me")
    if holder is not None:
        assert holder in str(info.value)
    assert fr.exists("out", "h", "ev", "capped") == 0  # nothing was written


def test_commit_acknowledges_inputs(fr: fakeredis.FakeRedis) -> None:
    fr.xgroup_create("events", "grp", id="0", mkstream=True)
    ids = [fr.xadd("events", {"data": str(i)}).decode() for i in range(3)]
    fr.xreadgroup("grp", "c", {"events": ">"})
    assert fr.xpending("events", "grp")["pending"] == 3
    step = AtomicStep("L")
    step.xack("events", "grp", ids[0])
    step.xack("events", "grp", ids[2])
    Committer(fr).commit(step, fence=None)
    pending = fr.xpending_range("events", "grp", min="-", max="+", count=10)
    assert [p["message_id"].decode() for p in pending] == [ids[1]]


def test_send_then_settle_writes_and_a_second_send_must_wait(fr: fakeredis.FakeRedis) -> None:
    committer = Committer(fr)
    committer.send(_full_step(), fence=None)
    assert committer.in_flight
    with pytest.raises(RuntimeError, match="in flight"):
        committer.send(_full_step(), fence=None)
    committer.settle()
    assert not committer.in_flight
    _check_full_step(fr)
    committer.settle()  # nothing in flight: nothing to do


def test_a_refused_step_is_reported_when_settled(fr: fakeredis.FakeRedis) -> None:
    fr.set("L", "8:other")
    committer = Committer(fr)
    committer.send(_full_step(), fence="7:me")  # not refused yet: the reply has not been read
    with pytest.raises(FencedOut, match="8:other"):
        committer.settle()
    assert fr.exists("out", "h", "ev", "capped") == 0
    fr.set("L", "9:me")
    committer.commit(_full_step(), fence="9:me")  # the connection is still in step
    _check_full_step(fr)


def test_an_unknown_opcode_is_an_error_not_a_fence(fr: fakeredis.FakeRedis) -> None:
    with pytest.raises(redis.ResponseError, match="BADOP Z") as info:
        Committer(fr).run(["L"], ["Z", 1, 0], fence=None)
    assert not isinstance(info.value, FencedOut)


# -- Lease --------------------------------------------------------------------------------------


def _lease(r: redis.Redis, holder: str, ttl_ms: int = 10_000, prefix: str = "") -> Lease:
    return Lease(r, leader_key=f"{prefix}leader", fence_key=f"{prefix}fence", holder=holder, ttl_ms=ttl_ms)


def test_lease_acquire_sets_token_holder_and_ttl(fr: fakeredis.FakeRedis) -> None:
    a = _lease(fr, "A", ttl_ms=5_000)
    assert a.token is None
    assert a.try_acquire() is True
    assert a.value == "1:A" and a.token == 1
    assert a.current_holder() == "1:A"
    assert 0 < fr.pttl("leader") <= 5_000


def test_lease_second_process_cannot_acquire_while_held(fr: fakeredis.FakeRedis) -> None:
    a, b = _lease(fr, "A"), _lease(fr, "B")
    assert a.try_acquire()
    assert b.try_acquire() is False
    assert b.value is None and b.token is None
    assert fr.get("fence") == b"1"  # a refused attempt does not use up a token
    assert a.current_holder() == "1:A"


def test_lease_token_increases_with_each_acquisition(fr: fakeredis.FakeRedis) -> None:
    a, b = _lease(fr, "A"), _lease(fr, "B")
    assert a.try_acquire()
    a.release()
    assert a.value is None and fr.exists("leader") == 0
    assert b.try_acquire()
    assert b.token == 2
    fr.delete("leader")  # b's lease lapses
    assert a.try_acquire()
    assert a.token == 3 and a.token > (b.token or 0)


def test_lease_renew_extends_while_held(fr: fakeredis.FakeRedis) -> None:
    a = _lease(fr, "A", ttl_ms=60_000)
    assert a.try_acquire()
    fr.pexpire("leader", 10)
    assert a.renew() is True
    assert fr.pttl("leader") > 10_000
    assert a.value == "1:A"


def test_lease_renew_fails_once_another_holds_it(fr: fakeredis.FakeRedis) -> None:
    a, b = _lease(fr, "A"), _lease(fr, "B")
    assert a.try_acquire()
    fr.delete("leader")  # lapsed
    assert b.try_acquire()
    assert a.renew() is False
    assert a.value is None and a.token is None
    assert b.current_holder() == "2:B"  # untouched by a's attempt


def test_lease_renew_without_holding_is_false(fr: fakeredis.FakeRedis) -> None:
    assert _lease(fr, "A").renew() is False


def test_lease_release_leaves_another_holders_lease_alone(fr: fakeredis.FakeRedis) -> None:
    a, b = _lease(fr, "A"), _lease(fr, "B")
    assert a.try_acquire()
    fr.delete("leader")
    assert b.try_acquire()
    a.release()
    assert fr.get("leader") == b"2:B"
    assert a.value is None


def test_deposed_leader_is_fenced_out_of_the_atomic_step(fr: fakeredis.FakeRedis) -> None:
    a, b = _lease(fr, "A"), _lease(fr, "B")
    assert a.try_acquire()
    fr.delete("leader")
    assert b.try_acquire()
    step = AtomicStep("leader")
    step.xadd("out", b"x")
    with pytest.raises(FencedOut):
        Committer(fr).commit(step, fence=a.value)
    Committer(fr).commit(step, fence=b.value)
    assert fr.xlen("out") == 1


# -- GroupReader --------------------------------------------------------------------------------


def _reader(r: redis.Redis, consumer: str, count: int = 10, stream: str = "events") -> GroupReader:
    return GroupReader(r, stream=stream, group="grp", consumer=consumer, count=count, block_ms=1)


def test_ensure_group_creates_the_stream_and_is_idempotent(fr: fakeredis.FakeRedis) -> None:
    reader = _reader(fr, "c1")
    reader.ensure_group()
    reader.ensure_group()
    groups = fr.xinfo_groups("events")
    assert [g["name"] for g in groups] == [b"grp"]


def test_group_starts_at_the_beginning_of_the_stream(fr: fakeredis.FakeRedis) -> None:
    before = fr.xadd("events", {"data": b"early"}).decode()
    reader = _reader(fr, "c1")
    reader.ensure_group()
    entries = reader.read()
    assert [(e.entry_id, e.data, e.deliveries) for e in entries] == [(before, b"early", 1)]
    assert reader.read() == []


def test_read_gives_none_for_an_entry_without_data(fr: fakeredis.FakeRedis) -> None:
    reader = _reader(fr, "c1")
    reader.ensure_group()
    fr.xadd("events", {"other": b"x"})
    (entry,) = reader.read()
    assert entry.data is None


def test_reclaim_takes_over_pending_entries_with_delivery_counts(fr: fakeredis.FakeRedis) -> None:
    crashed, successor = _reader(fr, "c1"), _reader(fr, "c2", count=2)
    crashed.ensure_group()
    ids = [fr.xadd("events", {"data": f"e{i}".encode()}).decode() for i in range(5)]
    assert len(crashed.read()) == 5  # delivered once, never acknowledged
    fr.xack("events", "grp", ids[1])
    batches = list(successor.reclaim())
    assert [len(b) for b in batches] == [2, 2]  # in batches of `count`
    got = [(e.entry_id, e.data, e.deliveries) for b in batches for e in b]
    assert got == [(ids[0], b"e0", 2), (ids[2], b"e2", 2), (ids[3], b"e3", 2), (ids[4], b"e4", 2)]
    again = [e.deliveries for b in successor.reclaim() for e in b]
    assert again == [3, 3, 3, 3]
    owners = {p["consumer"] for p in fr.xpending_range("events", "grp", min="-", max="+", count=10)}
    assert owners == {b"c2"}


def test_reclaim_with_nothing_pending_yields_nothing(fr: fakeredis.FakeRedis) -> None:
    reader = _reader(fr, "c1")
    reader.ensure_group()
    fr.xadd("events", {"data": b"x"})
    assert list(reader.reclaim()) == []


# -- the same on a real Redis -------------------------------------------------------------------


@pytest.mark.integration
def test_real_redis_commit_fence_and_ops(r: redis.Redis, prefix: str) -> None:
    leader = f"{prefix}leader"
    step = AtomicStep(leader)
    for op in _full_step_ops(prefix):
        op(step)
    r.set(leader, "1:other")
    with pytest.raises(FencedOut, match="1:other"):
        Committer(r).commit(step, fence="2:me")
    assert r.exists(f"{prefix}out", f"{prefix}h", f"{prefix}ev") == 0
    r.set(leader, "2:me")
    Committer(r).commit(step, fence="2:me")
    assert [f[b"data"] for _, f in r.xrange(f"{prefix}out")] == [b'{"n":1}']
    assert r.hgetall(f"{prefix}h") == {b"f2": b"v2"}
    assert r.lrange(f"{prefix}ev", 0, -1) == [b"2", b"3"]


def _full_step_ops(prefix: str) -> list[Callable[[AtomicStep], None]]:
    return [
        lambda s: s.xadd(f"{prefix}out", b'{"n":1}'),
        lambda s: s.xadd(f"{prefix}capped", b"a", maxlen=1),
        lambda s: s.hset(f"{prefix}h", "f1", b"v1"),
        lambda s: s.hset(f"{prefix}h", "f2", b"v2"),
        lambda s: s.hdel(f"{prefix}h", "f1"),
        lambda s: s.rpush_capped(f"{prefix}ev", "1", keep=2),
        lambda s: s.rpush_capped(f"{prefix}ev", "2", keep=2),
        lambda s: s.rpush_capped(f"{prefix}ev", "3", keep=2),
    ]


@pytest.mark.integration
def test_real_redis_lease_tokens_and_renewal(r: redis.Redis, prefix: str) -> None:
    a, b = _lease(r, "A", prefix=prefix), _lease(r, "B", prefix=prefix)
    assert a.try_acquire() and not b.try_acquire()
    assert a.renew()
    r.delete(f"{prefix}leader")
    assert b.try_acquire()
    assert (b.token or 0) > (a.token or 0)
    assert a.renew() is False
    a.release()
    assert b.current_holder() == f"{b.token}:B"


@pytest.mark.integration
def test_real_redis_reclaim_counts_deliveries_and_acks_deleted_entries(r: redis.Redis, prefix: str) -> None:
    stream = f"{prefix}events"
    crashed, successor = _reader(r, "c1", stream=stream), _reader(r, "c2", count=2, stream=stream)
    crashed.ensure_group()
    ids = [r.xadd(stream, {"data": f"e{i}".encode()}).decode() for i in range(4)]
    assert len(crashed.read()) == 4
    r.xdel(stream, ids[1])  # trimmed away while pending
    got = [(e.entry_id, e.deliveries) for batch in successor.reclaim() for e in batch]
    assert got == [(ids[0], 2), (ids[2], 2), (ids[3], 2)]
    pending = r.xpending_range(stream, "grp", min="-", max="+", count=10)
    assert [p["message_id"].decode() for p in pending] == [ids[0], ids[2], ids[3]]  # the deleted one was acked


# -- a read sent ahead (send_read / collect), real Redis: replies come over a connection of its own


def _ready_reader(r: redis.Redis, prefix: str, entries: int, count: int = 3) -> tuple[GroupReader, str, list[str]]:
    stream, leader = f"{prefix}events", f"{prefix}leader"
    reader = _reader(r, "c1", count=count, stream=stream)
    reader.ensure_group()
    ids = [as_text(r.xadd(stream, {"data": f"e{n}"})) for n in range(entries)]
    r.set(leader, "1:me")
    return reader, leader, ids


@pytest.mark.integration
def test_a_read_sent_ahead_claims_the_next_batch_in_order(r: redis.Redis, prefix: str) -> None:
    reader, leader, ids = _ready_reader(r, prefix, entries=5)
    assert reader.send_read(leader_key=leader, fence="1:me") and reader.reading
    with pytest.raises(RuntimeError, match="already in flight"):
        reader.send_read(leader_key=leader, fence="1:me")
    first = reader.collect()
    assert not reader.reading
    assert [(e.entry_id, e.data) for e in first] == [(ids[n], f"e{n}".encode()) for n in range(3)]
    assert reader.send_read(leader_key=leader, fence="1:me")
    assert [e.entry_id for e in reader.collect()] == ids[3:]
    assert reader.send_read(leader_key=leader, fence="1:me")
    assert reader.collect() == []  # nothing new
    assert r.xpending(f"{prefix}events", "grp")["pending"] == 5


@pytest.mark.integration
def test_a_read_sent_ahead_by_a_deposed_leader_is_refused_and_claims_nothing(r: redis.Redis, prefix: str) -> None:
    reader, leader, _ = _ready_reader(r, prefix, entries=2)
    r.set(leader, "2:successor")
    assert reader.send_read(leader_key=leader, fence="1:me")
    with pytest.raises(FencedOut, match="2:successor"):
        reader.collect()
    assert r.xpending(f"{prefix}events", "grp")["pending"] == 0


@pytest.mark.integration
def test_a_read_sent_ahead_after_a_script_flush_is_run_again(r: redis.Redis, prefix: str) -> None:
    reader, leader, ids = _ready_reader(r, prefix, entries=2)
    r.script_flush()  # Redis restarted, or SCRIPT FLUSH: the script's sha is unknown and nothing runs
    assert reader.send_read(leader_key=leader, fence="1:me")
    assert [e.entry_id for e in reader.collect()] == ids


@pytest.mark.integration
def test_an_abandoned_read_leaves_what_it_claimed_pending_for_the_reclaim(r: redis.Redis, prefix: str) -> None:
    reader, leader, ids = _ready_reader(r, prefix, entries=2)
    assert reader.send_read(leader_key=leader, fence="1:me")
    r.ping()  # on another connection, answered after the read: the read has run
    reader.abandon()
    assert not reader.reading
    assert [e.entry_id for batch in reader.reclaim() for e in batch] == ids
    assert reader.send_read(leader_key=leader, fence="1:me")  # a new connection
    assert reader.collect() == []

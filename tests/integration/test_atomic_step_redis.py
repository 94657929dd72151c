"""The atomic step's grouped writes on the real Redis: groups larger than one variadic call."""

from __future__ import annotations

import pytest
import redis

from streams.commit import AtomicStep, Committer


def test_large_groups_are_written_whole_in_order(r: redis.Redis, prefix: str) -> None:
    events = f"{prefix}events"
    r.xgroup_create(events, "grp", id="0", mkstream=True)
    ids = [r.xadd(events, {"data": str(i)}).decode() for i in range(1_100)]
    r.xreadgroup("grp", "c", {events: ">"}, count=2_000)
    step = AtomicStep(f"{prefix}leader")
    for i in range(1_100):
        step.xadd(f"{prefix}out", str(i).encode())
        step.hset(f"{prefix}h", f"f{i}", str(i))
        step.rpush_capped(f"{prefix}ev", str(i), keep=1_000)
        step.xack(events, "grp", ids[i])
    for i in range(0, 1_100, 2):
        step.hdel(f"{prefix}h", f"f{i}")
    Committer(r).commit(step, fence=None)
    assert [int(f[b"data"]) for _, f in r.xrange(f"{prefix}out")] == list(range(1_100))
    assert r.hgetall(f"{prefix}h") == {f"f{i}".encode(): str(i).encode() for i in range(1, 1_100, 2)}
    assert [int(v) for v in r.lrange(f"{prefix}ev", 0, -1)] == list(range(100, 1_100))
    assert r.xpending(events, "grp")["pending"] == 0


def test_a_wrong_type_anywhere_refuses_the_whole_step(r: redis.Redis, prefix: str) -> None:
    r.set(f"{prefix}ev", "not a list")
    step = AtomicStep(f"{prefix}leader")
    step.xadd(f"{prefix}out", b"1")
    step.hset(f"{prefix}h", "f", b"v")
    step.rpush_capped(f"{prefix}ev", "0.5", keep=10)
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        Committer(r).commit(step, fence=None)
    assert r.exists(f"{prefix}out", f"{prefix}h") == 0

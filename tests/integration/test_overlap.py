"""Overlapped turns (the run loop): a batch's atomic step is collected one turn later, after the
next batch has been routed. Real Redis, an in-process worker."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
import redis
from support.scorers import EXPLOSIONS, POISON_PREFIX

from streams.clients import Dispatcher, Slot
from streams.keys import Keys
from worker.routing import RoutingWorker
from worker.settings import Settings
from worker.signals import StopFlag

BATCH = 4


def _worker(
    redis_url: str,
    prefix: str,
    *,
    client: redis.Redis | None = None,
    on_decision: Callable[[Any], None] | None = None,
    **overrides: Any,
) -> RoutingWorker:
    defaults = {"consumer": "w1", "lease_ttl_ms": 30_000, "block_ms": 50, "batch_size": BATCH}
    settings = Settings(redis_url=redis_url, prefix=prefix, **{**defaults, **overrides})
    client = client or redis.Redis.from_url(redis_url, socket_timeout=10)
    return RoutingWorker(settings, client, stop=StopFlag(), on_decision=on_decision)


def _publish_pairs(r: redis.Redis, keys: Keys, pairs: int) -> None:
    """`pairs` slots and as many tasks: every task finds a slot."""
    for i in range(pairs):
        Slot(r, slot_id=f"s{i:02d}", model="haiku", keys=keys).free()
        Dispatcher(r, keys).publish_task(f"t{i:02d}", priority=50, requires={})


def _assigned(r: redis.Redis, keys: Keys) -> list[str]:
    return sorted(orjson.loads(f[b"data"])["task_id"] for _, f in r.xrange(keys.status) if b'"assigned"' in f[b"data"])


def _pending(r: redis.Redis, keys: Keys) -> int:
    return int(r.xpending(keys.events, "router")["pending"])


def test_overlapped_turns_route_a_backlog_exactly_once(r: redis.Redis, redis_url: str, prefix: str) -> None:
    keys = Keys(prefix)
    _publish_pairs(r, keys, 10)  # 20 entries: five full batches
    w = _worker(redis_url, prefix)
    turns = 0
    while w.processed < 20 and turns < 50:
        w.step(overlap=True)
        turns += 1
    assert w.processed == 20
    assert _assigned(r, keys) == [f"t{i:02d}" for i in range(10)]
    assert _pending(r, keys) == 0  # caught up: the last step was collected, every entry acknowledged


def test_a_step_refused_in_flight_drops_the_batch_routed_on_it(r: redis.Redis, redis_url: str, prefix: str) -> None:
    """The worker claims the next batch, is deposed, then sends its step: Redis refuses it. The
    refusal is found a turn later, after the next batch was routed on top of it; both batches are
    dropped unwritten and stay pending, and the next leader routes them once."""
    keys = Keys(prefix)
    _publish_pairs(r, keys, 4)  # 8 entries: two full batches
    w = _worker(redis_url, prefix)
    leader_key = keys.state(dry_run=False).leader
    collect = w.reader.collect

    def collect_then_deposed() -> Any:
        got = collect()  # the claim of the next batch: a successor takes over right after
        r.set(leader_key, "99:successor")
        return got

    w.reader.collect = collect_then_deposed  # type: ignore[method-assign]
    w.step(overlap=True)  # routes batch 1, claims batch 2, sends a step that Redis refuses
    w.step(overlap=True)  # routes batch 2, finds step 1 refused: both dropped
    assert w.processed == 0
    assert _assigned(r, keys) == []
    assert _pending(r, keys) == 8  # nothing acknowledged: all of it still to route

    w.reader.collect = collect  # type: ignore[method-assign]
    r.delete(leader_key)  # the successor's lease ends
    for _ in range(5):
        w.step(overlap=True)
    assert _assigned(r, keys) == ["t00", "t01", "t02", "t03"]
    assert _pending(r, keys) == 0


def test_a_graceful_stop_finishes_the_batch_already_claimed(r: redis.Redis, redis_url: str, prefix: str) -> None:
    keys = Keys(prefix)
    for i in range(6):  # 12 entries: three full batches
        Slot(r, slot_id=f"s{i:02d}", model="haiku", keys=keys).free()
        Dispatcher(r, keys).publish_task(f"t{i:02d}", priority=50, requires={})
    w = _worker(redis_url, prefix)
    step = w.step

    def one_turn_then_sigterm(**kw: object) -> None:
        step(**kw)  # type: ignore[arg-type]
        w.stop.stop()  # SIGTERM arrives during this turn

    w.step = one_turn_then_sigterm  # type: ignore[method-assign]
    assert w.run() == 0
    assert w.processed >= BATCH  # the batch whose step was in flight was finished
    pending = int(r.xpending(keys.events, "router")["pending"])
    assert pending == 0, f"{pending} entries claimed by the stopping worker were left unrouted and unacknowledged"


# a batch that fails again as it is taken over makes the turn wait a third of the lease TTL
SHORT_LEASE_MS = 1_500


def _poison_worker(redis_url: str, prefix: str, max_deliveries: int) -> RoutingWorker:
    return _worker(
        redis_url,
        prefix,
        lease_ttl_ms=SHORT_LEASE_MS,
        max_deliveries=max_deliveries,
        ev_scorer="support.scorers:explosive",
    )


def _dead_letters(r: redis.Redis, keys: Keys) -> list[tuple[str, str]]:
    letters = [orjson.loads(f[b"data"]) for _, f in r.xrange(keys.dead)]
    return [(orjson.loads(d["raw"])["task_id"], d["error"]) for d in letters]


def test_a_poison_entry_in_a_backlog_does_not_take_the_batch_claimed_ahead_with_it(
    r: redis.Redis, redis_url: str, prefix: str
) -> None:
    """The next batch is claimed before the poisoned one is routed; every retry of the poisoned
    batch leaves it claimed and unrouted, which must not count against its entries."""
    keys = Keys(prefix)
    dispatcher = Dispatcher(r, keys)
    for i in range(8):  # two full batches of slots
        Slot(r, slot_id=f"s{i}", model="haiku", keys=keys).free()
    for task_id in ("good-a", f"{POISON_PREFIX}1", "good-b", "good-c", "next-0", "next-1", "next-2", "next-3"):
        dispatcher.publish_task(task_id, priority=50)
    w = _poison_worker(redis_url, prefix, max_deliveries=2)
    for _ in range(30):
        w.turn()
    assert _dead_letters(r, keys) == [
        (f"{POISON_PREFIX}1", f"failed after 2 deliveries: RuntimeError: scorer exploded on {POISON_PREFIX}1")
    ]
    assert _assigned(r, keys) == ["good-a", "good-b", "good-c", "next-0", "next-1", "next-2", "next-3"]
    assert _pending(r, keys) == 0


def test_a_poison_entry_is_blamed_even_when_the_step_in_flight_is_refused_as_it_fails(
    r: redis.Redis, redis_url: str, prefix: str
) -> None:
    """Routing fails on the poison while the previous batch's step, in flight, is refused by Redis
    (a wrong-typed key): the refused step's entries are excused, the poisoned batch is not."""
    keys = Keys(prefix)
    dispatcher = Dispatcher(r, keys)
    for n in range(2):  # batch 1: assigns to s0 and s1
        Slot(r, slot_id=f"s{n}", model="haiku", keys=keys).free()
        dispatcher.publish_task(f"t{n}", priority=50)
    for task_id in (f"{POISON_PREFIX}2", "good-0", "good-1", "good-2"):  # batch 2
        dispatcher.publish_task(task_id, priority=50)
    r.set(keys.assign("s0"), "not a stream")  # batch 1's step will be refused
    w = _poison_worker(redis_url, prefix, max_deliveries=2)
    w.step(overlap=True)  # routes batch 1, claims batch 2, sends batch 1's step
    w.turn()  # routes batch 2: the poison raises; batch 1's step, collected meanwhile, was refused
    assert _assigned(r, keys) == []
    r.delete(keys.assign("s0"))
    EXPLOSIONS.pop(f"{POISON_PREFIX}2", None)
    for _ in range(30):
        w.turn()
    assert EXPLOSIONS[f"{POISON_PREFIX}2"] == 1  # once more after the first: two deliveries in all
    assert [task for task, _ in _dead_letters(r, keys)] == [f"{POISON_PREFIX}2"]
    assert _assigned(r, keys) == ["t0", "t1"]  # the good ones wait for a slot: routed, not dead
    waiting = {orjson.loads(f[b"data"])["task_id"] for _, f in r.xrange(keys.status) if b'"await_slot"' in f[b"data"]}
    assert waiting == {"good-0", "good-1", "good-2"}
    assert _pending(r, keys) == 0


def test_connections_the_server_closed_while_idle_are_replaced_not_failed(
    r: redis.Redis, redis_url: str, prefix: str
) -> None:
    """Redis (`timeout`) or a proxy closes idle connections; the step and the read sent ahead take
    their connection from the pool each time, which replaces a closed one, so the first backlog
    after a quiet spell goes through without an error (and without a rebuilt ledger)."""
    keys = Keys(prefix)
    client = redis.Redis.from_url(redis_url, socket_timeout=10, client_name=f"{prefix}worker")
    w = _worker(redis_url, prefix, client=client)
    for backlog in ("a", "b"):
        for i in range(4):  # two full batches
            Slot(r, slot_id=f"{backlog}{i}", model="haiku", keys=keys).free()
            Dispatcher(r, keys).publish_task(f"{backlog}-t{i}", priority=50, requires={})
        failures = [w.turn() for _ in range(4)]
        assert failures == [None] * 4
        # the quiet spell: the server closes every connection of the worker
        for info in r.client_list():
            if info.get("name") == f"{prefix}worker":
                r.client_kill_filter(_id=info["id"])
    assert _assigned(r, keys) == [f"{b}-t{i}" for b in ("a", "b") for i in range(4)]
    assert _pending(r, keys) == 0


def test_the_batch_claimed_ahead_is_not_blamed_when_sending_a_step_fails(
    r: redis.Redis, redis_url: str, prefix: str
) -> None:
    """The step of one batch fails to go out for a reason of ours (not Redis's): that batch is
    blamed, the next one, claimed ahead and never routed, is not."""
    keys = Keys(prefix)
    dispatcher = Dispatcher(r, keys)
    for i in range(8):  # two full batches of slot.free
        Slot(r, slot_id=f"s{i}", model="haiku", keys=keys).free()
    for task_id in ("a0", "a1", "a2", "a3", "b0", "b1", "b2", "b3"):
        dispatcher.publish_task(task_id, priority=50)
    w = _worker(redis_url, prefix, lease_ttl_ms=SHORT_LEASE_MS, max_deliveries=1)
    send, sends = w.committer.send, [0]

    def third_send_fails(step: Any, *, fence: str | None) -> None:
        sends[0] += 1
        if sends[0] == 3:  # the a-batch's step, with the b-batch claimed ahead
            raise redis.DataError("a value of ours the client cannot pack")
        send(step, fence=fence)

    w.committer.send = third_send_fails  # type: ignore[method-assign]
    for _ in range(12):
        w.turn()
    assert sorted(task for task, _ in _dead_letters(r, keys)) == ["a0", "a1", "a2", "a3"]
    assert _assigned(r, keys) == ["b0", "b1", "b2", "b3"]
    assert _pending(r, keys) == 0


def test_a_failing_decision_hook_does_not_stop_routing(r: redis.Redis, redis_url: str, prefix: str) -> None:
    keys = Keys(prefix)
    _publish_pairs(r, keys, 4)
    seen: list[str] = []

    def hook(decision: Any) -> None:
        seen.append(decision.task.task_id)
        raise RuntimeError("observer broke")

    w = _worker(redis_url, prefix, on_decision=hook)
    assert [w.turn() for _ in range(4)] == [None] * 4
    assert sorted(seen) == ["t00", "t01", "t02", "t03"]
    assert _assigned(r, keys) == ["t00", "t01", "t02", "t03"]
    assert _pending(r, keys) == 0

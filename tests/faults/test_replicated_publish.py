"""ROUTER_MIN_REPLICAS=1 against a real primary and replica (tests/support/replicas.py): what the
worker decides reaches the streams only once the replica has the step; while the replica's link
is cut, routing pauses (logged, counted for /metrics) and nothing is published; a new leader
publishes what an earlier one left in the outbox."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import orjson
import pytest
import redis
from support.processes import RouterProcess, wait_for
from support.replicas import ReplicatedRedis

from streams.commit import AtomicStep, Committer, Replication
from streams.connection import NotReplicated
from streams.keys import Keys

pytestmark = pytest.mark.faults
REPLICATED = {"ROUTER_MIN_REPLICAS": "1", "ROUTER_REPLICA_TIMEOUT_MS": "500"}


@pytest.fixture
def replicated(tmp_path: Path) -> Iterator[ReplicatedRedis]:
    servers = ReplicatedRedis(tmp_path / "redis", lag_s=0.2)
    try:
        yield servers
    finally:
        servers.close()


@pytest.fixture
def front(replicated: ReplicatedRedis) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(replicated.url, socket_timeout=10)
    yield client
    client.close()


def _publish_work(r: redis.Redis, keys: Keys, task_id: str, slot_id: str) -> None:
    r.xadd(keys.events, {"data": orjson.dumps({"type": "slot.free", "slot_id": slot_id, "model": "haiku"})})
    r.xadd(
        keys.events,
        {"data": orjson.dumps({"type": "task.pending", "task_id": task_id, "priority": 50, "requires": {}})},
    )


def test_an_assignment_is_published_only_once_the_replica_has_it(
    replicated: ReplicatedRedis, front: redis.Redis, keys: Keys, start_worker: Callable[..., RouterProcess]
) -> None:
    worker = start_worker(env=REPLICATED, url=replicated.url)
    _publish_work(front, keys, "t-1", "s-1")
    wait_for(lambda: front.xlen(keys.assign("s-1")) == 1, what="the assignment")
    replica = replicated.replica.client()
    # the moment a slot can read it, the replica already knows the task is assigned (a failover
    # cannot give it to another slot); the publication itself follows it there
    assert replica.hexists(keys.state(dry_run=False).assigned, "t-1")
    assert front.llen(keys.state(dry_run=False).outbox) == 0
    wait_for(lambda: replica.xlen(keys.assign("s-1")) == 1, what="the publication on the replica")

    replicated.link.held = True  # the replica's link is cut: bytes wait in the relay
    _publish_work(front, keys, "t-2", "s-2")
    wait_for(lambda: "routing paused" in worker.log(), what="the worker to pause")
    assert front.xlen(keys.assign("s-2")) == 0, "published before the replica had it"
    assert int(front.hget(keys.state(dry_run=False).replication, "timeouts") or 0) >= 1
    decided = front.xlen(keys.decisions)

    replicated.link.held = False
    wait_for(lambda: front.xlen(keys.assign("s-2")) == 1, what="the assignment once replicated")
    assert replica.hexists(keys.state(dry_run=False).assigned, "t-2")
    assert front.xlen(keys.decisions) > decided
    assert worker.terminate() == 0


def test_a_new_leader_publishes_the_outbox_its_predecessor_left(
    replicated: ReplicatedRedis, front: redis.Redis, keys: Keys, start_worker: Callable[..., RouterProcess]
) -> None:
    state = keys.state(dry_run=False)
    predecessor = Committer(
        front,
        replication=Replication(
            min_replicas=1,
            timeout_ms=300,
            leader_key=state.leader,
            outbox_key=state.outbox,
            probe_key=state.replication,
        ),
    )
    step = AtomicStep(state.leader, outbox=state.outbox)
    step.xadd(keys.assign("s-1"), b'{"type":"assignment","task_id":"t-1","decision_id":"d-1"}', maxlen=1000)
    replicated.link.held = True  # the predecessor's step never reaches the replica in time
    with pytest.raises(NotReplicated):
        predecessor.commit(step, fence=None)
    assert front.llen(state.outbox) == 3 and front.xlen(keys.assign("s-1")) == 0
    replicated.link.held = False
    worker = start_worker(env=REPLICATED, url=replicated.url)
    wait_for(lambda: front.xlen(keys.assign("s-1")) == 1, what="the predecessor's assignment")
    assert front.llen(state.outbox) == 0
    wait_for(lambda: "ledger restored" in worker.log(), what="the worker past its first turn")
    assert front.xlen(keys.assign("s-1")) == 1  # the outbox went with its publication: once
    assert worker.terminate() == 0

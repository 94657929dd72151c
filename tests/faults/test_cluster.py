"""Redis Cluster: with a hash tag in ROUTER_PREFIX every key of one router lands in one cluster slot,
so the atomic step (a Lua call over all of them), XREADGROUP and XAUTOCLAIM work on a cluster. The
test starts its own three-node cluster on private ports and runs the worker and recorder on it."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from redis.cluster import RedisCluster
from redis.crc import key_slot
from support.failover import check_invariants, settled, start_recorder, terminate_all, worker_env
from support.fleet import Dispatcher, Fleet
from support.processes import RouterProcess, wait_for
from support.servers import RedisCluster as ClusterServers

from streams.connection import cluster_prefix_problem, connect
from streams.keys import Keys

pytestmark = [pytest.mark.faults, pytest.mark.integration]

TASKS = 400


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterServers]:
    servers = ClusterServers(tmp_path_factory.mktemp("cluster"))
    try:
        servers.start()
        yield servers
    finally:
        servers.close()


def test_prefix_needs_a_hash_tag_on_a_cluster() -> None:
    assert cluster_prefix_problem("redis://n1:7000/0?cluster=true", "router:") is not None
    assert cluster_prefix_problem("redis://n1:7000/0?cluster=true", "router:{pool-a}:") is None
    assert cluster_prefix_problem("redis://n1:7000/0", "router:") is None


def test_every_key_of_a_hash_tagged_prefix_is_in_one_slot() -> None:
    keys = Keys("router:{pool-a}:")
    names = [keys.events, keys.status, keys.decisions, keys.dead, keys.usage, keys.assign("slot-9")]
    for state in (keys.state(dry_run=False), keys.state(dry_run=True)):
        names += [state.slots, state.waiting, state.assigned, state.ev_window, state.utilisation, state.leader]
    assert len({key_slot(name.encode()) for name in names}) == 1


def test_worker_and_recorder_route_end_to_end_on_a_three_node_cluster(cluster: ClusterServers, tmp_path: Path) -> None:
    url = f"{cluster.url}?cluster=true"
    prefix = f"router:{{pool-{uuid.uuid4().hex[:8]}}}:"
    keys = Keys(prefix)
    r = connect(url)
    assert isinstance(r, RedisCluster)
    database_url = f"sqlite:///{tmp_path / 'decisions.sqlite3'}"
    recorder = start_recorder(url, prefix, database_url, tmp_path / "recorder.log")
    workers = [
        RouterProcess(
            ["worker", "--consumer", name],
            env=worker_env(url, prefix, lease_ttl_ms=1000),
            log_path=tmp_path / f"worker-{name}.log",
        )
        for name in ("a", "b")
    ]
    fleet = Fleet(connect(url), keys, seed=3)
    dispatcher = Dispatcher(connect(url), keys, seed=3, count=TASKS, rate=400.0)
    try:
        wait_for(lambda: any('"leading"' in w.log() for w in workers), what="a worker to lead on the cluster")
        fleet.start()
        dispatcher.start()
        wait_for(lambda: len(fleet.received) >= TASKS // 2, timeout_s=60, what="half the tasks assigned")
        # fail over on the cluster too: the standby reclaims with XAUTOCLAIM and commits with the script
        leader = next(w for w in workers if '"leading"' in w.log())
        leader.kill()
        wait_for(lambda: len(fleet.received) >= TASKS, timeout_s=60, what="every task assigned")
        wait_for(lambda: settled(r, keys), timeout_s=60, what="every event and decision settled")
    finally:
        dispatcher.halt.set()
        fleet.stop()
        dispatcher.join(timeout=10)
    assert fleet.errors == [] and dispatcher.errors == []
    assert check_invariants(r, keys, database_url, fleet, dispatcher.task_ids()) == []
    survivor = next(w for w in workers if w is not leader)
    assert "leading" in survivor.log()
    codes = terminate_all([survivor, recorder])
    assert [code for _, code in codes] == [0, 0]
    nodes: Any = r.get_nodes()
    assert len(nodes) == 3

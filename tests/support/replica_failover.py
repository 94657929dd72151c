"""One seeded primary failover (tests/support/replicas.py): a worker and a recorder, a durable
dispatcher and a fleet of 8 slots, all through the front relay; the primary is killed with SIGKILL
mid-stream, the replica (its link 200 ms behind) promoted, everyone follows it. Shared by
tests/faults/test_replica_failover.py and bench/failover_replica.py.

What is counted (`ReplicaRunResult`): tasks received by two slots, tasks the durable publish
acknowledged that the new primary lost (neither assigned nor waiting), decisions in SQL more than
once or missing from it, and assignments a slot received twice (a re-publication the slot
client skips by decision id)."""

from __future__ import annotations

import random
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import redis
from sqlalchemy import text

from store.db import make_engine
from streams.keys import LIVE_GROUP, RECORDER_GROUP, Keys
from support.failover import settled, start_recorder, terminate_all, worker_env
from support.fleet import Dispatcher, Fleet, _landed, client, retrying
from support.processes import RouterProcess, wait_for
from support.replicas import ReplicatedRedis

SLOTS = (("h0", "haiku"), ("h1", "haiku"), ("h2", "haiku"), ("h3", "haiku"))
SLOTS += (("s0", "sonnet"), ("s1", "sonnet"), ("o0", "opus"), ("o1", "opus"))
WAIT_MS = 2000


@dataclass(slots=True)
class ReplicaRunResult:
    seed: int
    min_replicas: int
    tasks: int
    two_slots: int = 0  # tasks received by two different slots (run twice)
    lost: int = 0  # durably published tasks neither assigned nor waiting afterwards
    sql_duplicates: int = 0
    sql_missing: int = 0  # decisions on the new primary's stream that SQL lacks
    sql_orphans: int = 0  # decisions in SQL the new primary never made (undone by the failover)
    republished: int = 0  # assignments a slot got again (same decision) and skipped
    resumed_s: float = 0.0  # from the kill to the first decision the new primary holds
    problems: list[str] = field(default_factory=list)


def _durable_pipeline(r: redis.Redis, stream: str, items: list[tuple[bytes, bytes]]) -> None:
    """XADD each (data, nonce), then WAIT 1; raises ConnectionError when not replicated, so the
    caller's retry publishes again what has not landed."""
    pipe = r.pipeline(transaction=False)
    for data, nonce in items:
        pipe.xadd(stream, {"data": data, "nonce": nonce})
    pipe.wait(1, WAIT_MS)
    if int(pipe.execute()[-1]) < 1:
        raise redis.ConnectionError("not on the replica yet")


class DurableDispatcher(Dispatcher):
    """Publishes each batch durably (XADD, WAIT 1; the batch again on failure: task.pending is
    idempotent) and remembers which tasks the durable publish acknowledged."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.acknowledged: set[str] = set()

    def _publish(self, batch: list[bytes]) -> None:
        _durable_pipeline(self.r, self.keys.events, [(data, b"") for data in batch])
        self.acknowledged.update(orjson.loads(data)["task_id"] for data in batch)


class DurableFleet(Fleet):
    """The fleet, as a slot client should behave across a failover: each slot.free is published
    durably (all those due at once, WAIT 1, and on failure again those whose nonce did not land),
    and an assignment seen before (by decision id) is skipped."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.decisions_taken: set[str] = set()
        self.republished = 0
        self._frees: list[tuple[bytes, bytes]] = []

    def _take(self, assignment: dict[str, Any]) -> None:
        if assignment["decision_id"] in self.decisions_taken:
            self.republished += 1
            return
        self.decisions_taken.add(assignment["decision_id"])
        super()._take(assignment)

    def _release_due(self) -> None:
        super()._release_due()
        frees, self._frees = self._frees, []
        if frees:
            retrying(lambda: self._publish_missing(frees), halt=self.halt)

    def _publish_missing(self, frees: list[tuple[bytes, bytes]]) -> None:
        missing = [item for item in frees if not _landed(self.r, self.keys.events, item[1])]
        if missing:
            _durable_pipeline(self.r, self.keys.events, missing)

    def _free(self, slot_id: str, done: str | None) -> None:
        self.busy[slot_id] = None
        doc: dict[str, Any] = {"type": "slot.free", "slot_id": slot_id, "model": self.models[slot_id]}
        if done is not None:
            doc["completed"] = {"task_id": done, "input_tokens": 100, "output_tokens": 10, "cost_usd": 0.001}
        self._frees.append((orjson.dumps(doc), uuid.uuid4().hex.encode()))
        if done is None:  # the first announcement, before the loop: publish it at once
            self._release_due()


def run_replica_failover(
    *, seed: int, workdir: Path, min_replicas: int, tasks: int = 300, rate: float = 400.0
) -> ReplicaRunResult:
    rand = random.Random(seed)
    result = ReplicaRunResult(seed=seed, min_replicas=min_replicas, tasks=tasks)
    servers = ReplicatedRedis(workdir / "redis", lag_s=0.2)
    procs: list[RouterProcess] = []
    fleet: DurableFleet | None = None
    dispatcher: DurableDispatcher | None = None
    keys = Keys(f"replica:{seed}:{uuid.uuid4().hex[:6]}:")
    database_url = f"sqlite:///{workdir / 'decisions.sqlite3'}"
    try:
        env = worker_env(
            servers.url,
            keys.prefix,
            lease_ttl_ms=2000,
            ROUTER_MIN_REPLICAS=str(min_replicas),
            ROUTER_REPLICA_TIMEOUT_MS=str(WAIT_MS),
            ROUTER_BATCH_SIZE="2048",
        )
        worker = RouterProcess(["worker", "--consumer", "w0"], env=env, log_path=workdir / "worker.log")
        procs += [worker, start_recorder(servers.url, keys.prefix, database_url, workdir / "recorder.log")]
        wait_for(lambda: '"leading"' in worker.log(), what="the worker to lead")
        fleet = DurableFleet(client(servers.url), keys, seed=seed, slots=SLOTS, hold_s=(0.0, 0.02))
        dispatcher = DurableDispatcher(client(servers.url), keys, seed=seed, count=tasks, rate=rate)
        fleet.start()
        dispatcher.start()
        kill_at = rand.randrange(tasks // 5, tasks * 4 // 5)
        wait_for(
            lambda: dispatcher is not None and dispatcher.published >= kill_at, timeout_s=60, what="the kill point"
        )
        time.sleep(rand.uniform(0.0, 0.2))
        killed = time.monotonic()
        servers.fail_over()
        fresh = servers.new_primary()
        decided = int(fresh.xlen(keys.decisions))
        wait_for(lambda: int(fresh.xlen(keys.decisions)) > decided, timeout_s=60, what="routing on the new primary")
        result.resumed_s = time.monotonic() - killed
        wait_for(lambda: dispatcher is not None and dispatcher.published >= tasks, timeout_s=120, what="every task")
        try:
            # quiet twice, half a second apart: a publication just out may not be read by its slot yet
            wait_for(
                lambda: _quiet(fresh, keys, fleet) and not time.sleep(0.5) and _quiet(fresh, keys, fleet),
                timeout_s=60,
                what="the run to settle",
            )
        except AssertionError:
            result.problems.append(f"never settled: {_unsettled(fresh, keys, fleet)}")
        _count(result, fresh, keys, database_url, fleet, dispatcher)
        result.problems += fleet.errors + dispatcher.errors
        for proc, code in terminate_all(procs):
            if code != 0:
                result.problems.append(f"{proc.args[0]} exited {code}")
        procs = []
    finally:
        for thread in (dispatcher, fleet):
            if thread is not None:
                thread.halt.set()
        if fleet is not None:
            fleet.stop()
        for proc in procs:
            proc.stop()
        servers.close()
    return result


def _quiet(r: redis.Redis, keys: Keys, fleet: DurableFleet) -> bool:
    """Nothing left to publish, every event handled, every decision recorded, no slot holding a
    task (the outbox first: what it publishes meanwhile is then seen by the other checks). After a
    failover Redis may not know a group's lag, which `settled` would take for none: the last
    delivered id is compared with the stream's last entry instead."""
    if r.llen(keys.state(dry_run=False).outbox):
        return False
    caught_up = all(
        _delivered_all(r, stream, group)
        for stream, group in ((keys.events, LIVE_GROUP), (keys.decisions, RECORDER_GROUP))
    )
    return caught_up and settled(r, keys) and not any(fleet.busy.values())


def _delivered_all(r: redis.Redis, stream: str, group: str) -> bool:
    newest: Any = r.xrevrange(stream, count=1)
    for info in r.xinfo_groups(stream):
        if info["name"] in (group, group.encode()):
            return not newest or info["last-delivered-id"] == newest[0][0]
    return False


def _unsettled(r: redis.Redis, keys: Keys, fleet: DurableFleet) -> str:
    state = keys.state(dry_run=False)
    busy = {slot: task for slot, task in fleet.busy.items() if task}
    return (
        f"settled={settled(r, keys)} busy={busy} outbox={r.llen(state.outbox)}"
        f" waiting={r.hlen(state.waiting)} assigned={r.hlen(state.assigned)}"
    )


def _count(
    result: ReplicaRunResult,
    r: redis.Redis,
    keys: Keys,
    database_url: str,
    fleet: DurableFleet,
    dispatcher: DurableDispatcher,
) -> None:
    slots_per_task: dict[str, set[str]] = {}
    for slot_id, task_id in fleet.received:
        slots_per_task.setdefault(task_id, set()).add(slot_id)
    result.two_slots = sum(len(slots) > 1 for slots in slots_per_task.values())
    result.republished = fleet.republished
    waiting = {k.decode() for k in r.hkeys(keys.state(dry_run=False).waiting)}
    lost = [task for task in dispatcher.acknowledged if task not in slots_per_task and task not in waiting]
    result.lost = len(lost)
    if lost:
        decided = Counter(orjson.loads(f[b"data"])["task_id"] for _, f in r.xrange(keys.decisions))
        events = {orjson.loads(f[b"data"]).get("task_id") for _, f in r.xrange(keys.events)}
        result.problems.append(
            f"lost e.g. {sorted(lost)[:3]}: {sum(t in decided for t in lost)} decided,"
            f" {sum(t in events for t in lost)} in the events stream"
        )
    on_stream = {orjson.loads(f[b"data"])["decision_id"] for _, f in r.xrange(keys.decisions)}
    engine = make_engine(database_url)
    try:
        with engine.connect() as conn:
            stored = Counter(row[0] for row in conn.execute(text("select decision_id from model_routing_decisions")))
    finally:
        engine.dispose()
    result.sql_duplicates = sum(n > 1 for n in stored.values())
    result.sql_missing = len(on_stream - set(stored))
    result.sql_orphans = len(set(stored) - on_stream)

"""A queue made by a live worker, for the tests of queue position and ETA: slots that have freed up
a few times (so that the router has measured how long their tasks take), kept busy, and tasks
waiting behind them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import redis

from streams.keys import Keys
from support.processes import RouterProcess, wait_for

HAIKU_SLOTS = ("h1", "h2")


def publish(r: redis.Redis, keys: Keys, docs: list[dict[str, Any]]) -> None:
    """One MULTI, so the worker reads them as one batch."""
    pipe = r.pipeline(transaction=True)
    for doc in docs:
        pipe.xadd(keys.events, {"data": orjson.dumps(doc)})
    pipe.execute()


def docs(r: redis.Redis, stream: str) -> list[dict[str, Any]]:
    return [orjson.loads(fields[b"data"]) for _, fields in r.xrange(stream)]


def start_worker(redis_url: str, prefix: str, log_path: Path) -> RouterProcess:
    """`router worker` as a child process, once it holds the lease."""
    proc = RouterProcess(
        ["worker", "--consumer", "queue-w"],
        env={"REDIS_URL": redis_url, "ROUTER_PREFIX": prefix, "ROUTER_BLOCK_MS": "200", "ROUTER_LEASE_TTL_MS": "2000"},
        log_path=log_path,
    )
    leader = Keys(prefix).state(dry_run=False).leader
    r = redis.Redis.from_url(redis_url)
    try:
        wait_for(lambda: r.get(leader) or proc.proc.poll() is not None, what="the worker to take the lease")
    finally:
        r.close()
    assert proc.proc.poll() is None, proc.log()
    return proc


def task(task_id: str, priority: int) -> dict[str, Any]:
    return {"type": "task.pending", "task_id": task_id, "priority": priority, "requires": {}}


def _free(slot_id: str, completed: str | None = None) -> dict[str, Any]:
    doc: dict[str, Any] = {"type": "slot.free", "slot_id": slot_id, "model": "haiku"}
    if completed is not None:
        doc["completed"] = {"task_id": completed, "input_tokens": 10, "output_tokens": 5}
    return doc


def held(r: redis.Redis, keys: Keys, slot_id: str) -> str:
    """The task most recently assigned to the slot."""
    return str(docs(r, keys.assign(slot_id))[-1]["task_id"])


def warm_up(r: redis.Redis, keys: Keys, *, rounds: int = 3) -> dict[str, str]:
    """Register the haiku slots and run `rounds` tasks through each, so that the router has measured
    their service times; every slot ends busy. Returns slot id -> the task it holds."""
    publish(r, keys, [_free(slot_id) for slot_id in HAIKU_SLOTS])
    for turn in range(rounds):
        if turn:  # each slot reports its task done and is free again
            publish(r, keys, [_free(slot_id, held(r, keys, slot_id)) for slot_id in HAIKU_SLOTS])
        publish(r, keys, [task(f"warm-{turn}-{slot_id}", 50) for slot_id in HAIKU_SLOTS])
        wait_for(
            lambda n=turn + 1: all(len(docs(r, keys.assign(s))) >= n for s in HAIKU_SLOTS),
            what=f"warm-up round {turn + 1} assigned",
        )
    return {slot_id: held(r, keys, slot_id) for slot_id in HAIKU_SLOTS}


def queue_up(r: redis.Redis, keys: Keys, priorities: list[int]) -> dict[str, dict[str, Any]]:
    """Tasks `q0`, `q1`, ... of these priorities, in one batch, behind the busy slots; returns each
    one's await_slot status message."""
    task_ids = [f"q{i}" for i in range(len(priorities))]
    publish(r, keys, [task(task_id, p) for task_id, p in zip(task_ids, priorities, strict=True)])

    def waiting() -> dict[str, dict[str, Any]] | None:
        found = {s["task_id"]: s for s in docs(r, keys.status) if s["type"] == "await_slot"}
        return found if set(task_ids) <= set(found) else None

    found = wait_for(waiting, what=f"{len(task_ids)} await_slot status messages")
    return {task_id: found[task_id] for task_id in task_ids}


def drain(r: redis.Redis, keys: Keys, count: int) -> list[str]:
    """Free a slot `count` times, one at a time, each reporting its task done; returns the tasks
    assigned, in the order they were assigned."""
    assigned: list[str] = []
    for turn in range(count):
        slot_id = HAIKU_SLOTS[turn % len(HAIKU_SLOTS)]
        before = len(docs(r, keys.assign(slot_id)))
        publish(r, keys, [_free(slot_id, held(r, keys, slot_id))])
        wait_for(lambda s=slot_id, n=before: len(docs(r, keys.assign(s))) > n, what=f"assignment {turn + 1}")
        assigned.append(held(r, keys, slot_id))
    return assigned


def by_position(statuses: dict[str, dict[str, Any]]) -> list[str]:
    return sorted(statuses, key=lambda task_id: statuses[task_id]["position"])

"""A slot process killed with SIGKILL in the middle of its stream of assignments and restarted,
against a live `router worker`: nothing it completed is run again, nothing is lost."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis
from support.processes import REPO, wait_for

from streams.clients import SLOT_GROUP, Dispatcher
from streams.keys import Keys

pytestmark = pytest.mark.integration

SLOT_ID = "acct-a/haiku-1"
TASKS = [f"t{n:02d}" for n in range(12)]
HELD = "t05"  # the task the slot is killed in the middle of


def _docs(r: redis.Redis, stream: str) -> list[dict[str, Any]]:
    return [orjson.loads(fields[b"data"]) for _, fields in r.xrange(stream)]


def _begun(r: redis.Redis, keys: Keys) -> list[str]:
    return [task.decode() for task in r.lrange(f"{keys.prefix}test:begun", 0, -1)]


def _completions(r: redis.Redis, keys: Keys) -> list[str]:
    return [e["completed"]["task_id"] for e in _docs(r, keys.events) if "completed" in e]


def _bare_frees(r: redis.Redis, keys: Keys) -> int:
    """`slot.free` without `completed`: the slot saying it holds nothing (so the router drops what
    it counted as the slot's). A slot restarted with work to finish must not send one."""
    return sum(e["type"] == "slot.free" and "completed" not in e for e in _docs(r, keys.events))


@pytest.fixture
def start_slot(redis_url: str, prefix: str, tmp_path: Path) -> Iterator[Callable[[], subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    env = {**os.environ, "REDIS_URL": redis_url, "ROUTER_PREFIX": prefix, "PYTHONPATH": str(REPO)}
    program = REPO / "tests" / "support" / "recording_slot.py"

    def start() -> subprocess.Popen[bytes]:
        with open(tmp_path / f"slot-{len(started)}.log", "wb") as log:
            proc = subprocess.Popen([sys.executable, str(program), SLOT_ID, "haiku"], env=env, stdout=log, stderr=log)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.kill()
        proc.wait(timeout=10)


def _worker_and_slot(
    r: redis.Redis, keys: Keys, start_worker: Any, start_slot: Callable[[], subprocess.Popen[bytes]]
) -> subprocess.Popen[bytes]:
    """A live worker, and the slot process once it has announced itself free."""
    start_worker()
    slot = start_slot()
    wait_for(lambda: any(e["type"] == "slot.free" for e in _docs(r, keys.events)), what="the slot to join")
    return slot


def test_a_slot_killed_mid_task_and_restarted_reruns_nothing_and_loses_nothing(
    r: redis.Redis, keys: Keys, start_worker: Any, start_slot: Callable[[], subprocess.Popen[bytes]]
) -> None:
    first = _worker_and_slot(r, keys, start_worker, start_slot)
    dispatcher = Dispatcher(r, keys)
    for task_id in TASKS:  # one slot: the router hands them out one at a time, in this order
        dispatcher.publish_task(task_id, priority=50, layer="chore", hold=task_id == HELD or None)

    wait_for(lambda: HELD in _begun(r, keys), what=f"the slot to begin {HELD}")
    first.kill()  # SIGKILL in the middle of the task: no completion, no acknowledgement
    first.wait(timeout=10)
    done_before = _completions(r, keys)
    assert done_before == TASKS[: TASKS.index(HELD)]
    assert r.xpending(keys.assign(SLOT_ID), SLOT_GROUP)["pending"] == 1  # the held task, unacknowledged

    start_slot()
    r.rpush(f"{keys.prefix}test:release:{HELD}", "go")
    wait_for(lambda: len(_completions(r, keys)) >= len(TASKS), timeout_s=60, what="every task completed")

    begun = _begun(r, keys)
    after_restart = begun[len(done_before) + 1 :]
    assert after_restart[0] == HELD  # the interrupted task is resumed first...
    assert not set(after_restart) & set(done_before)  # ...and no completed one is run again
    assert Counter(_completions(r, keys)) == Counter(TASKS)  # each completed exactly once: none lost
    assigned = Counter(s["task_id"] for s in _docs(r, keys.status) if s["type"] == "assigned")
    assert assigned == Counter(TASKS)  # the router never had to hand one out twice
    assert r.xpending(keys.assign(SLOT_ID), SLOT_GROUP)["pending"] == 0
    assert _bare_frees(r, keys) == 1  # the first start's only
    assert r.xlen(keys.dead) == 0


def test_a_slot_killed_between_tasks_and_restarted_gets_only_what_came_while_it_was_down(
    r: redis.Redis, keys: Keys, start_worker: Any, start_slot: Callable[[], subprocess.Popen[bytes]]
) -> None:
    first = _worker_and_slot(r, keys, start_worker, start_slot)
    dispatcher = Dispatcher(r, keys)
    for task_id in TASKS[:3]:
        dispatcher.publish_task(task_id, priority=50)
    wait_for(lambda: len(_completions(r, keys)) == 3, what="three tasks completed")
    first.kill()
    first.wait(timeout=10)
    dispatcher.publish_task("while-down", priority=50)  # the router still counts the slot as free
    wait_for(lambda: r.xlen(keys.assign(SLOT_ID)) == 4, what="the assignment made while the slot was down")

    start_slot()
    wait_for(lambda: len(_completions(r, keys)) == 4, what="the task assigned while down completed")
    assert _begun(r, keys) == [*TASKS[:3], "while-down"]
    assert Counter(_completions(r, keys)) == Counter([*TASKS[:3], "while-down"])
    assert _bare_frees(r, keys) == 1

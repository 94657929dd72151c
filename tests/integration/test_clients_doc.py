"""docs/clients.md's Python programs, taken from the page and run as they are, each in its own
process, against the real Redis and a live `router worker`: the page cannot drift from the API."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis
from support.processes import REPO, wait_for

from streams.keys import Keys

pytestmark = pytest.mark.integration

PAGE = REPO / "docs" / "clients.md"
BLOCK = re.compile(r"^```python\n(.*?)^```$", re.DOTALL | re.MULTILINE)
MAX_LINES = 30  # what the page promises a newcomer: each program under 30 lines


def _programs() -> dict[str, str]:
    """The page's Python blocks, by the client each one uses."""
    blocks = BLOCK.findall(PAGE.read_text())
    return {name: next(b for b in blocks if f"import {name}\n" in b) for name in ("Dispatcher", "Slot")}


def _docs(r: redis.Redis, stream: str) -> list[dict[str, Any]]:
    return [orjson.loads(fields[b"data"]) for _, fields in r.xrange(stream)]


@pytest.mark.parametrize("name", ["Dispatcher", "Slot"])
def test_each_program_is_under_30_lines(name: str) -> None:
    assert len(_programs()[name].splitlines()) < MAX_LINES  # blank lines and imports included


@pytest.fixture
def program_env(redis_url: str, prefix: str) -> dict[str, str]:
    return {**os.environ, "REDIS_URL": redis_url, "ROUTER_PREFIX": prefix, "PYTHONPATH": str(REPO)}


@pytest.fixture
def slot_program(program_env: dict[str, str], tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    script = tmp_path / "slot.py"
    script.write_text(_programs()["Slot"])
    with open(tmp_path / "slot.log", "wb") as log:
        proc = subprocess.Popen([sys.executable, str(script)], env=program_env, stdout=log, stderr=log)
    yield proc
    proc.kill()
    proc.wait(timeout=10)


def test_the_dispatcher_and_the_slot_of_the_page_work_end_to_end(
    r: redis.Redis,
    keys: Keys,
    start_worker: Any,
    slot_program: subprocess.Popen[bytes],
    program_env: dict[str, str],
    tmp_path: Path,
) -> None:
    start_worker()
    wait_for(
        lambda: any(e["type"] == "slot.free" for e in _docs(r, keys.events)) or slot_program.poll() is not None,
        what="the slot to announce itself free",
    )
    assert slot_program.poll() is None, (tmp_path / "slot.log").read_text()

    dispatcher = subprocess.run(
        [sys.executable, "-c", _programs()["Dispatcher"]], env=program_env, capture_output=True, text=True, timeout=60
    )
    assert dispatcher.returncode == 0, dispatcher.stderr
    settled = [line.split()[:3] for line in dispatcher.stdout.splitlines() if " await_slot " not in line]
    assert sorted(settled) == [["T-17", "assigned", "haiku"], ["T-18", "assigned", "haiku"]]
    # one slot, two tasks: one waits (told so once) unless the slot was done before it arrived
    assert sum(" await_slot " in line for line in dispatcher.stdout.splitlines()) <= 1

    completed = wait_for(
        lambda: (
            (done := [e["completed"] for e in _docs(r, keys.events) if "completed" in e]) and len(done) == 2 and done
        ),
        what="the slot to complete both tasks",
    )
    assert sorted(c["task_id"] for c in completed) == ["T-17", "T-18"]
    assert all(c["cost_usd"] == 0.0027 for c in completed)
    assert r.xpending(keys.assign("acct-a/haiku-1"), "slot")["pending"] == 0
    assert r.xlen(keys.dead) == 0

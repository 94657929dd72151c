"""A slot process for the restart tests: the loop of docs/clients.md, noting in Redis each task it
begins (`{prefix}test:begun`), and holding a task whose fields say `"hold": true` until the test
pushes `{prefix}test:release:{task_id}`, so a test can kill it mid-task without guessing when.

    python tests/support/recording_slot.py SLOT_ID MODEL    (REDIS_URL, ROUTER_PREFIX from the environment)
"""

from __future__ import annotations

import os
import sys

import redis

from streams.clients import Slot
from streams.keys import Keys


def main(slot_id: str, model: str) -> None:
    r = redis.Redis.from_url(os.environ["REDIS_URL"])
    prefix = os.environ["ROUTER_PREFIX"]
    slot = Slot(r, slot_id=slot_id, model=model, keys=Keys(prefix))
    assignment = slot.resume()
    while True:
        if assignment is None:
            assignment = slot.next_assignment(block_ms=1000)
        if assignment is None:
            slot.heartbeat()
            continue
        task_id = assignment["task_id"]
        slot.started(task_id)
        r.rpush(f"{prefix}test:begun", task_id)
        if assignment["task"].get("hold"):
            r.blpop([f"{prefix}test:release:{task_id}"], timeout=0)
        slot.complete(task_id, input_tokens=100, output_tokens=10, cost_usd=0.0001)
        assignment = None


if __name__ == "__main__":
    main(*sys.argv[1:3])

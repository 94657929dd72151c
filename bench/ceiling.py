"""The ceiling harness: the least a consumer of router:events can do with the same batches.

It reads with the same consumer group call and batch size as the worker, writes one output per
entry (naming the entry, and a task.pending's task, as a decision record does) and acknowledges,
all in one pipeline per batch. Run as `python -m bench.ceiling` with REDIS_URL,
ROUTER_PREFIX and ROUTER_BATCH_SIZE in the environment; SIGTERM stops it.
"""

from __future__ import annotations

import os
import signal
from types import FrameType
from typing import Any

import orjson
import redis

from streams.keys import LIVE_GROUP  # the worker's group: the driver watches it to see when a run is done

CEILING_OUT = "ceiling:out"  # its one output stream, under the run's prefix
_stop = False


def _on_term(signum: int, frame: FrameType | None) -> None:
    global _stop
    _stop = True


def main() -> int:
    signal.signal(signal.SIGTERM, _on_term)
    r = redis.Redis.from_url(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))
    prefix = os.environ.get("ROUTER_PREFIX", "router:")
    batch = int(os.environ.get("ROUTER_BATCH_SIZE", "256"))
    events, out = f"{prefix}events", f"{prefix}{CEILING_OUT}"
    try:
        r.xgroup_create(events, LIVE_GROUP, id="0", mkstream=True)
    except redis.ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise
    r.set(f"{prefix}leader", "ceiling")  # the driver waits for this key, as it does for the worker's lease
    while not _stop:
        reply: Any = r.xreadgroup(LIVE_GROUP, "ceiling", {events: ">"}, count=batch, block=200)
        if not reply:
            continue
        pipe = r.pipeline(transaction=False)
        ids = []
        for _, entries in reply:
            for entry_id, fields in entries:
                doc = orjson.loads(fields[b"data"])
                output = {"event_id": entry_id.decode(), "task_id": doc.get("task_id")}
                pipe.xadd(out, {"data": orjson.dumps(output)})
                ids.append(entry_id)
        pipe.xack(events, LIVE_GROUP, *ids)
        pipe.execute()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Drive a consumer of router:events (the real worker, or the ceiling harness) and time it.

Workload: `slots` haiku slots register, then as many tasks fill them (warm-up). Measured events
come in pairs: task.pending for a new task, then slot.free for the next busy slot in turn, so every
task finds a slot as soon as the free that follows it is read. There are more slots (512) than
pairs in one batch (256 entries = 128 pairs), so a slot is never freed twice before it is refilled.
Latency is the time from the task event's XADD to its assignment's XADD, both read from the entry
ids (Redis server clock, millisecond resolution).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from typing import Any

import orjson
import redis

from bench.compiled import ensure_compiled
from sim.metrics import percentile
from streams.keys import LIVE_GROUP

ROUTER_BIN = os.path.join(os.path.dirname(sys.executable), "router")
MODEL = "haiku"
COMPILED = "router-compiled"
ROUTERS = ("router", COMPILED)  # kinds that run `router worker`; the other is the ceiling harness


@dataclass(frozen=True, slots=True, kw_only=True)
class RunResult:
    kind: str
    offered_eps: float | None  # None: saturation (a burst sent as fast as the client can, or a backlog)
    events: int
    achieved_eps: float
    p50_ms: float
    p99_ms: float
    lost: int

    def to_json(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def _ms(entry_id: bytes | str) -> int:
    text = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    return int(text.split("-", 1)[0])


def _start(kind: str, redis_url: str, prefix: str, batch_size: int) -> subprocess.Popen[bytes]:
    env = dict(os.environ, REDIS_URL=redis_url, ROUTER_PREFIX=prefix, ROUTER_BATCH_SIZE=str(batch_size))
    env["ROUTER_LOG_LEVEL"] = "warning"  # one log line per decision would time the logger, not the router
    if kind == COMPILED:  # the same worker with router/ and streams/ from the mypyc build first on the path
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ensure_compiled()), env.get("PYTHONPATH", "")) if p)
    cmd = [ROUTER_BIN, "worker"] if kind in ROUTERS else [sys.executable, "-m", "bench.ceiling"]
    # stderr goes to a file: an unread pipe fills up and would block the process being measured
    log = tempfile.NamedTemporaryFile(prefix=f"bench-{kind}-", suffix=".log", delete=False)  # noqa: SIM115
    return subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=log)


class Bench:
    def __init__(self, *, kind: str, redis_url: str, slots: int = 512, batch_size: int = 256) -> None:
        self.kind = kind
        self.r = redis.Redis.from_url(redis_url)
        self.prefix = f"bench:{uuid.uuid4().hex[:10]}:"
        self.slots = [f"bench-slot-{i:04d}" for i in range(slots)]
        self.proc = _start(kind, redis_url, self.prefix, batch_size)
        self.events = f"{self.prefix}events"
        self.task_event_ms: dict[str, int] = {}
        self._task_no = 0

    # -- setup and teardown ------------------------------------------------------------------

    def __enter__(self) -> Bench:
        deadline = time.monotonic() + 20
        while not self.r.exists(f"{self.prefix}leader"):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    f"{self.kind} did not start: {self.proc.stderr.read().decode() if self.proc.stderr else ''}"
                )
            time.sleep(0.05)
        pipe = self.r.pipeline(transaction=False)
        for slot in self.slots:
            pipe.xadd(self.events, {"data": orjson.dumps({"type": "slot.free", "slot_id": slot, "model": MODEL})})
        pipe.execute()
        for _ in self.slots:
            self._send_task(self.r)
        self.wait_assigned(timeout_s=30)
        self.task_event_ms.clear()  # warm-up tasks are not measured
        return self

    def __exit__(self, *exc: object) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        for key in self.r.scan_iter(match=f"{self.prefix}*", count=1000):
            self.r.delete(key)

    # -- load --------------------------------------------------------------------------------

    def _send_task(self, pipe: Any) -> None:
        self._task_no += 1
        task_id = f"bt{self._task_no}"
        doc = {"type": "task.pending", "task_id": task_id, "priority": 50, "requires": {}, "layer": "chore"}
        pipe.xadd(self.events, {"data": orjson.dumps(doc)})

    def _send_pairs(self, pairs: int) -> None:
        """task.pending then slot.free, pipelined; remembers each task event's id.

        The task goes first so that, at every point of the stream, frees never outnumber tasks: no
        slot is ever left free at the end of a batch, so the cyclic choice of slot to free never
        frees a slot that is already free (which would strand one task)."""
        pipe = self.r.pipeline(transaction=False)
        first = self._task_no
        for i in range(pairs):
            slot = self.slots[(first + i) % len(self.slots)]
            self._send_task(pipe)
            pipe.xadd(self.events, {"data": orjson.dumps({"type": "slot.free", "slot_id": slot, "model": MODEL})})
        ids = pipe.execute()
        for i in range(pairs):
            self.task_event_ms[f"bt{first + i + 1}"] = _ms(ids[2 * i])

    def offered(self, events_per_s: float, seconds: float) -> None:
        start = time.perf_counter()
        sent = 0
        while True:
            elapsed = time.perf_counter() - start
            if elapsed >= seconds:
                return
            due = int(events_per_s * elapsed / 2) - sent  # pairs due by now
            if due > 0:
                self._send_pairs(due)
                sent += due
            time.sleep(0.0005)

    def burst(self, events: int, chunk: int = 1000) -> None:
        for _ in range(0, events // 2, chunk):
            self._send_pairs(chunk)

    def backlog(self, events: int) -> int:
        """A burst sent while the consumer is stopped (SIGSTOP), then the consumer let go: it drains
        a backlog with no driver competing for the cores. Returns when it was let go (Redis clock,
        ms). The pause is far shorter than the worker's lease."""
        os.kill(self.proc.pid, signal.SIGSTOP)
        try:
            self.burst(events)
            seconds, micros = self.r.time()
        finally:
            os.kill(self.proc.pid, signal.SIGCONT)
        return int(seconds) * 1000 + int(micros) // 1000

    # -- results -----------------------------------------------------------------------------

    def assignments(self) -> dict[str, int]:
        streams = (
            [f"{self.prefix}assign:{s}" for s in self.slots]
            if self.kind in ROUTERS
            else [f"{self.prefix}assign:ceiling"]
        )
        found: dict[str, int] = {}
        pipe = self.r.pipeline(transaction=False)
        for stream in streams:
            pipe.xrange(stream)
        for entries in pipe.execute():
            for entry_id, fields in entries:
                found[orjson.loads(fields[b"data"])["task_id"]] = _ms(entry_id)
        return found

    def consumed(self) -> bool:
        """Every event written so far has been read and acknowledged by the consumer. Both the
        worker and the ceiling acknowledge a batch in the same call as (or after) its outputs, so
        by then every output is written too. Cheap (XINFO GROUPS): polling the outputs themselves
        would read every assignment again at each poll, taking the cores the run is measuring."""
        pipe = self.r.pipeline(transaction=False)
        pipe.xinfo_stream(self.events)
        pipe.xinfo_groups(self.events)
        stream, groups = pipe.execute()
        for group in groups:
            if group["name"] == LIVE_GROUP.encode():
                caught_up = group["last-delivered-id"] == stream["last-generated-id"]
                return bool(caught_up and group["pending"] == 0)
        return False

    def wait_assigned(self, *, timeout_s: float) -> None:
        """Until the consumer has caught up with every event sent (or `timeout_s` passed)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and not self.consumed():
            time.sleep(0.05)

    def result(self, offered_eps: float | None, *, released_ms: int | None = None) -> RunResult:
        """The run's figures; after `backlog`, `released_ms` (when the consumer was let go) is where
        the time and each event's latency start, as no event could be read before it."""
        self.wait_assigned(timeout_s=20)  # a task still unassigned by then counts as lost
        done = self.assignments()
        since = released_ms or 0
        latencies = [done[t] - max(at, since) for t, at in self.task_event_ms.items() if t in done]
        measured = [t for t in self.task_event_ms if t in done]
        first = released_ms if released_ms is not None else min(self.task_event_ms.values())
        last = max(done[t] for t in measured) if measured else first
        events = 2 * len(self.task_event_ms)
        return RunResult(
            kind=self.kind,
            offered_eps=offered_eps,
            events=events,
            achieved_eps=round(events / max(last - first, 1) * 1000, 1),
            p50_ms=round(percentile([float(x) for x in latencies], 0.5), 2),
            p99_ms=round(percentile([float(x) for x in latencies], 0.99), 2),
            lost=len(self.task_event_ms) - len(measured),
        )

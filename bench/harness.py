"""Drive a consumer of router:events (the real worker, or the ceiling harness) and time it.

The events come from a workload (bench/workload.py; `mixed` by default): its slots register, the
warm-up tasks fill them (and, for `mixed`, leave a standing backlog of waiting tasks), then the
measured events are sent at a fixed rate, as a burst, or as a backlog written while the consumer
is stopped. A slot.free reports as `completed` the task the driver last saw assigned to that slot
after its previous free (from router:status, matched by the decision id's batch, so a report never
names an earlier task); until it has seen one, the free carries no `completed`. The ceiling
assigns nothing, so its frees name a placeholder task.

Latency is event -> decision: from a measured task.pending or slot.free's XADD to the XADD of the
first decision record naming it as its `event_id` (a task's await_slot or assignment; the
assignment a freed slot gave), both read from the entry ids (Redis server clock, millisecond
resolution). The ceiling writes one entry per input entry naming it, so its figure is the same
measure of the least a consumer can do.
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

from bench.ceiling import CEILING_OUT
from bench.compiled import ensure_compiled
from bench.workload import Workload
from sim.metrics import percentile
from streams.keys import LIVE_GROUP, Keys

ROUTER_BIN = os.path.join(os.path.dirname(sys.executable), "router")
COMPILED = "router-compiled"
ROUTERS = ("router", COMPILED)  # kinds that run `router worker`; the other is the ceiling harness
_DECIDING = frozenset({"task.pending", "slot.free"})  # the events whose latency is measured
_READ_CHUNK = 5_000


@dataclass(frozen=True, slots=True, kw_only=True)
class RunResult:
    kind: str
    offered_eps: float | None  # None: saturation (a burst sent as fast as the client can, or a backlog)
    events: int
    achieved_eps: float
    p50_ms: float
    p99_ms: float
    max_ms: float = 0.0
    lost: int  # measured tasks without a decision, plus input entries not acknowledged
    waiting: int = 0  # tasks waiting at the end (the worker's snapshot)

    def to_json(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def _id(entry_id: bytes | str) -> tuple[int, int]:
    text = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    ms, _, seq = text.partition("-")
    return int(ms), int(seq or 0)


def _start(kind: str, redis_url: str, prefix: str, batch_size: int) -> subprocess.Popen[bytes]:
    # default settings otherwise, the log level included: what a user runs
    env = dict(os.environ, REDIS_URL=redis_url, ROUTER_PREFIX=prefix, ROUTER_BATCH_SIZE=str(batch_size))
    env.pop("ROUTER_LOG_LEVEL", None)
    if kind == COMPILED:  # the same worker with router/ and streams/ from the mypyc build first on the path
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ensure_compiled()), env.get("PYTHONPATH", "")) if p)
    cmd = [ROUTER_BIN, "worker"] if kind in ROUTERS else [sys.executable, "-m", "bench.ceiling"]
    # stderr goes to a file: an unread pipe fills up and would block the process being measured
    log = tempfile.NamedTemporaryFile(prefix=f"bench-{kind}-", suffix=".log", delete=False)  # noqa: SIM115
    return subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=log)


class Bench:
    def __init__(self, *, kind: str, redis_url: str, workload: Workload, batch_size: int = 256) -> None:
        self.kind = kind
        self.r = redis.Redis.from_url(redis_url)
        self.prefix = f"bench:{uuid.uuid4().hex[:10]}:"
        self.workload = workload
        self.proc = _start(kind, redis_url, self.prefix, batch_size)
        self.events = f"{self.prefix}events"
        self.event_ms: dict[str, int] = {}  # measured deciding event's entry id -> its XADD (ms)
        self.tasks: list[str] = []  # measured tasks
        self.sent = 0  # measured events
        self._holder: dict[str, str] = {}  # slot -> the task assigned to it since its last free
        self._freed_at: dict[str, tuple[int, int]] = {}  # slot -> entry id of its last free
        self._status_from = "0-0"

    # -- setup and teardown ------------------------------------------------------------------

    def __enter__(self) -> Bench:
        deadline = time.monotonic() + 20
        while not self.r.exists(f"{self.prefix}leader"):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{self.kind} did not start (see its log in {tempfile.gettempdir()})")
            time.sleep(0.05)
        self._send(self.workload.registrations(), measured=False)
        self._send(self.workload.warm_up(), measured=False)
        self.wait_consumed(timeout_s=120)
        self._learn()
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

    def _send(self, docs: list[dict[str, Any]], *, measured: bool = True) -> None:
        """XADD the documents in one pipeline, a freed slot's `completed` filled in as it is sent."""
        pipe = self.r.pipeline(transaction=False)
        for doc in docs:
            if doc["type"] == "slot.free":
                task_id = self._holder.pop(doc["slot_id"], None)
                if self.kind not in ROUTERS:
                    task_id = "bt0"  # the ceiling assigns nothing: a placeholder of the same shape
                if task_id is not None:
                    doc = {**doc, "completed": self.workload.completed(task_id)}
            pipe.xadd(self.events, {"data": orjson.dumps(doc)})
        ids = pipe.execute()
        for doc, entry_id in zip(docs, ids, strict=True):
            kind = doc["type"]
            if kind == "slot.free":
                self._freed_at[doc["slot_id"]] = _id(entry_id)
            if measured and kind in _DECIDING:
                self.event_ms[entry_id.decode()] = _id(entry_id)[0]
                if kind == "task.pending":
                    self.tasks.append(doc["task_id"])
        if measured:
            self.sent += len(docs)

    def _learn(self) -> None:
        """Which task each slot holds: assignments on router:status since the last look, counted only
        when decided in a batch that read the slot's last free (its batch id is the id of the batch's
        last entry), so an older assignment read late is never taken for the current one."""
        if self.kind not in ROUTERS:
            return
        reply: Any = self.r.xread({f"{self.prefix}status": self._status_from}, count=100_000)
        skip = len(self.prefix)
        for _, entries in reply or ():
            for entry_id, fields in entries:
                self._status_from = entry_id.decode()
                doc = orjson.loads(fields[b"data"])
                if doc.get("type") != "assigned":
                    continue
                batch = doc["decision_id"][skip:].rpartition(".")[0]
                if batch.startswith("tick"):
                    continue  # an idle turn's: no event read, nothing to compare with
                slot_id = doc["slot_id"]
                if _id(batch) >= self._freed_at.get(slot_id, (0, 0)):
                    self._holder[slot_id] = doc["task_id"]

    def offered(self, events_per_s: float, seconds: float) -> None:
        docs = self.workload.measured(int(events_per_s * seconds))
        start = time.perf_counter()
        learned = start
        while self.sent < len(docs):
            now = time.perf_counter()
            due = min(int(events_per_s * (now - start)), len(docs)) - self.sent
            if due > 0:
                self._send(docs[self.sent : self.sent + due])
            if now - learned > 0.02:
                self._learn()
                learned = now
            time.sleep(0.0005)

    def burst(self, events: int, chunk: int = 1000, *, learn: bool = True) -> None:
        docs = self.workload.measured(events)
        for at in range(0, len(docs), chunk):
            if learn:
                self._learn()
            self._send(docs[at : at + chunk])

    def backlog(self, events: int) -> int:
        """A burst sent while the consumer is stopped (SIGSTOP), then the consumer let go: it drains
        a backlog with no driver competing for the cores. Returns when it was let go (Redis clock,
        ms). The pause is far shorter than the worker's lease. Frees report what was known when it
        stopped: nothing is assigned meanwhile."""
        os.kill(self.proc.pid, signal.SIGSTOP)
        try:
            self.burst(events, learn=False)
            seconds, micros = self.r.time()
        finally:
            os.kill(self.proc.pid, signal.SIGCONT)
        return int(seconds) * 1000 + int(micros) // 1000

    # -- results -----------------------------------------------------------------------------

    def _entries(self, stream: str) -> list[tuple[bytes, dict[bytes, bytes]]]:
        out: list[tuple[bytes, dict[bytes, bytes]]] = []
        start = "-"
        while True:
            chunk: Any = self.r.xrange(stream, min=start, count=_READ_CHUNK)
            out += chunk
            if len(chunk) < _READ_CHUNK:
                return out
            start = "(" + chunk[-1][0].decode()

    def decisions(self) -> tuple[dict[str, int], set[str]]:
        """Each event's first decision (its XADD, ms), and the tasks decided at all."""
        stream = f"{self.prefix}decisions" if self.kind in ROUTERS else f"{self.prefix}{CEILING_OUT}"
        first: dict[str, int] = {}
        decided: set[str] = set()
        for entry_id, fields in self._entries(stream):
            doc = orjson.loads(fields[b"data"])
            event_id = doc.get("event_id")
            if event_id is not None and event_id not in first:
                first[event_id] = _id(entry_id)[0]
            if doc.get("task_id") is not None:
                decided.add(doc["task_id"])
        return first, decided

    def consumed(self) -> bool:
        """Every event written so far has been read and acknowledged by the consumer. Both the
        worker and the ceiling acknowledge a batch in the same call as (or after) its outputs, so
        by then every output is written too. Cheap (XINFO GROUPS): polling the outputs themselves
        would read every decision again at each poll, taking the cores the run is measuring."""
        return self._unconsumed() == 0

    def _unconsumed(self) -> int:
        pipe = self.r.pipeline(transaction=False)
        pipe.xinfo_stream(self.events)
        pipe.xinfo_groups(self.events)
        stream, groups = pipe.execute()
        for group in groups:
            if group["name"] == LIVE_GROUP.encode():
                unread = int(stream["entries-added"]) - int(group.get("entries-read") or 0)
                return max(unread, 0) + int(group["pending"])
        return int(stream["entries-added"])

    def wait_consumed(self, *, timeout_s: float) -> None:
        """Until the consumer has caught up with every event sent (or `timeout_s` passed)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and not self.consumed():
            time.sleep(0.05)

    def result(self, offered_eps: float | None, *, released_ms: int | None = None) -> RunResult:
        """The run's figures; after `backlog`, `released_ms` (when the consumer was let go) is where
        the time and each event's latency start, as no event could be read before it."""
        self.wait_consumed(timeout_s=60)  # an entry still unacknowledged by then counts as lost
        unconsumed = self._unconsumed()
        first_decision, decided = self.decisions()
        since = released_ms or 0
        latencies = [
            float(first_decision[e] - max(at, since)) for e, at in self.event_ms.items() if e in first_decision
        ]
        if self.kind in ROUTERS:
            lost = sum(t not in decided for t in self.tasks)
        else:
            lost = sum(e not in first_decision for e in self.event_ms)
        start = released_ms if released_ms is not None else min(self.event_ms.values(), default=0)
        end = max((first_decision[e] for e in self.event_ms if e in first_decision), default=start)
        waiting = int(self.r.hlen(Keys(self.prefix).state(dry_run=False).waiting)) if self.kind in ROUTERS else 0
        return RunResult(
            kind=self.kind,
            offered_eps=offered_eps,
            events=self.sent,
            achieved_eps=round(self.sent / max(end - start, 1) * 1000, 1),
            p50_ms=round(percentile(latencies, 0.5), 2),
            p99_ms=round(percentile(latencies, 0.99), 2),
            max_ms=max(latencies, default=0.0),
            lost=lost + unconsumed,
            waiting=waiting,
        )

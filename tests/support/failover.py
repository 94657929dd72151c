"""One seeded failover run: two `router worker` processes (a leader and a hot standby) and a
`router recorder` process, a steady dispatcher and a simulated fleet; the leader is killed with
SIGKILL at seeded random points and the standby must take over. Shared by tests/faults and
bench/failover.py.

After the run, `check_invariants` lists every broken guarantee (empty means all held):
each task assigned exactly once or still waiting, no slot ever holding two tasks, every decision
record unique on the stream and present in SQL exactly once."""

from __future__ import annotations

import random
import signal
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
from store.migrate import upgrade
from streams.keys import LIVE_GROUP, RECORDER_GROUP, Keys
from support.fleet import Dispatcher, Fleet, client
from support.processes import RouterProcess, wait_for


@dataclass(frozen=True, slots=True)
class Takeover:
    lease_s: float  # from the SIGKILL to the standby holding the lease
    decision_s: float  # from the SIGKILL to the first decision the new leader wrote


@dataclass(slots=True)
class RunResult:
    seed: int
    tasks: int
    events: int = 0
    decisions: int = 0
    takeovers: list[Takeover] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    seconds: float = 0.0


def worker_env(redis_url: str, prefix: str, *, lease_ttl_ms: int, **extra: str) -> dict[str, str]:
    return {
        "REDIS_URL": redis_url,
        "ROUTER_PREFIX": prefix,
        "ROUTER_BLOCK_MS": "100",
        "ROUTER_LEASE_TTL_MS": str(lease_ttl_ms),
        "ROUTER_LOG_LEVEL": "info",
        **extra,
    }


def start_recorder(redis_url: str, prefix: str, database_url: str, log_path: Path) -> RouterProcess:
    engine = make_engine(database_url)
    try:
        upgrade(engine)
    finally:
        engine.dispose()
    env = {"REDIS_URL": redis_url, "ROUTER_PREFIX": prefix, "DATABASE_URL": database_url, "ROUTER_BLOCK_MS": "100"}
    return RouterProcess(["recorder", "--consumer", "rec"], env=env, log_path=log_path)


def holder(r: redis.Redis, keys: Keys) -> str | None:
    raw = r.get(keys.state(dry_run=False).leader)
    return raw.decode().split(":", 1)[1] if raw else None


def has_logged(proc: RouterProcess, needle: str) -> bool:
    if proc.proc.poll() is not None:
        raise AssertionError(f"process exited early with {proc.proc.returncode}:\n{proc.log()[-4000:]}")
    return needle in proc.log()


class FailoverRun:
    """Drives one run; `run()` returns the result with its takeover times and broken invariants."""

    def __init__(
        self,
        *,
        seed: int,
        redis_url: str,
        workdir: Path,
        tasks: int = 1500,
        rate: float = 500.0,
        kills: int = 2,
        lease_ttl_ms: int = 1000,
        database_url: str | None = None,
        pause: bool = False,
    ) -> None:
        """Starts `kills + 1` workers. `pause`: SIGSTOP the leader instead of killing it, and SIGCONT
        it once a standby leads (a deposed leader waking up); otherwise SIGKILL it."""
        self.seed = seed
        self.pause = pause
        self.rand = random.Random(seed)
        self.redis_url = redis_url
        self.workdir = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.tasks = tasks
        self.rate = rate
        self.kills = kills
        self.lease_ttl_ms = lease_ttl_ms
        self.prefix = f"failover:{seed}:{uuid.uuid4().hex[:8]}:"
        self.keys = Keys(self.prefix)
        self.database_url = database_url or f"sqlite:///{workdir / 'decisions.sqlite3'}"
        self.r = redis.Redis.from_url(redis_url, socket_timeout=10)
        self.workers: dict[str, RouterProcess] = {}
        self.recorder: RouterProcess | None = None
        self.probes: list[str] = []  # one task published at each takeover
        self._next_worker = 0

    # -- processes -------------------------------------------------------------------------------

    def _start_worker(self) -> str:
        consumer = f"w{self._next_worker}"
        self._next_worker += 1
        env = worker_env(self.redis_url, self.prefix, lease_ttl_ms=self.lease_ttl_ms)
        self.workers[consumer] = RouterProcess(
            ["worker", "--consumer", consumer], env=env, log_path=self.workdir / f"worker-{consumer}.log"
        )
        return consumer

    def _wait_started(self, consumer: str) -> None:
        wait_for(lambda: has_logged(self.workers[consumer], "worker starting"), what=f"{consumer} to start")

    # -- the run ---------------------------------------------------------------------------------

    def run(self) -> RunResult:
        try:
            return self._run()
        finally:
            self.cleanup()

    def _run(self) -> RunResult:
        result = RunResult(seed=self.seed, tasks=self.tasks)
        began = time.monotonic()
        recorder = start_recorder(self.redis_url, self.prefix, self.database_url, self.workdir / "recorder.log")
        self.recorder = recorder
        started = [self._start_worker() for _ in range(self.kills + 1)]  # a leader and its standbys
        wait_for(lambda: holder(self.r, self.keys) in started, what="one of the workers to lead")
        for consumer in started:
            self._wait_started(consumer)
        fleet = Fleet(client(self.redis_url), self.keys, seed=self.seed)
        dispatcher = Dispatcher(client(self.redis_url), self.keys, seed=self.seed, count=self.tasks, rate=self.rate)
        fleet.start()
        dispatcher.start()
        try:
            # seeded kill points spread over the publishing, each after the previous takeover
            spread = sorted(self.rand.sample(range(self.tasks // 10, self.tasks * 9 // 10), self.kills))
            for kill_at in spread:
                wait_for(lambda k=kill_at: dispatcher.published >= k, timeout_s=60, what=f"{kill_at} tasks published")
                time.sleep(self.rand.uniform(0.0, 0.05))  # a seeded random point inside the batch cycle
                result.takeovers.append(self._kill_leader())
            wait_for(lambda: dispatcher.published >= self.tasks, timeout_s=120, what="every task published")
            total = self.tasks + len(self.probes)
            wait_for(
                lambda: len(fleet.received) >= total or bool(fleet.errors), timeout_s=120, what="every task assigned"
            )
            wait_for(
                lambda: settled(self.r, self.keys), timeout_s=60, what="every event acknowledged and decision recorded"
            )
        finally:
            dispatcher.halt.set()
            fleet.stop()
            dispatcher.join(timeout=10)
        result.problems = [*fleet.errors, *dispatcher.errors]
        result.problems += check_invariants(
            self.r, self.keys, self.database_url, fleet, [*dispatcher.task_ids(), *self.probes]
        )
        live = [p for p in [*self.workers.values(), recorder] if p.proc.poll() is None]
        result.problems += [f"{' '.join(p.args)} exited {code} on SIGTERM" for p, code in terminate_all(live) if code]
        result.events = int(self.r.xlen(self.keys.events))
        result.decisions = int(self.r.xlen(self.keys.decisions))
        result.seconds = time.monotonic() - began
        return result

    def _kill_leader(self) -> Takeover:
        dead = holder(self.r, self.keys)
        assert dead is not None and dead in self.workers, f"no live leader to kill (holder {dead!r})"
        last = self._last_decision_id()
        probe = f"probe-{len(self.probes)}"
        killed_at = time.monotonic()
        if self.pause:
            self.workers[dead].proc.send_signal(signal.SIGSTOP)
        else:
            self.workers[dead].kill()
        # work for the new leader even if the dispatcher has finished, so its first write shows
        doc = {"type": "task.pending", "task_id": probe, "priority": 90, "requires": {}}
        self.r.xadd(self.keys.events, {"data": orjson.dumps(doc)})
        self.probes.append(probe)
        wait_for(
            lambda: holder(self.r, self.keys) not in (None, dead), timeout_s=30, what="a standby to take the lease"
        )
        leased = time.monotonic()
        wait_for(lambda: self._last_decision_id() != last, timeout_s=30, what="the new leader's first decision")
        decided = time.monotonic()
        if self.pause:  # it wakes believing it leads; its next renewal or write must tell it otherwise
            self.workers[dead].proc.send_signal(signal.SIGCONT)
            wait_for(
                lambda: (
                    has_logged(self.workers[dead], "standing by")
                    or has_logged(self.workers[dead], "write refused")
                    or has_logged(self.workers[dead], "read refused")
                ),
                what="the woken leader to notice it was deposed",
            )
        return Takeover(lease_s=leased - killed_at, decision_s=decided - killed_at)

    def _last_decision_id(self) -> bytes | None:
        last: Any = self.r.xrevrange(self.keys.decisions, count=1)
        return last[0][0] if last else None

    def cleanup(self) -> None:
        for proc in [*self.workers.values(), *([self.recorder] if self.recorder else [])]:
            proc.stop()
        keys = list(self.r.scan_iter(match=f"{self.prefix}*", count=1000))
        if keys:
            self.r.delete(*keys)
        self.r.close()


def check_invariants(r: redis.Redis, keys: Keys, database_url: str, fleet: Fleet, task_ids: list[str]) -> list[str]:
    """Every broken guarantee after a run (empty: all held)."""
    problems = list(fleet.violations)
    per_task = fleet.per_task()
    problems += [f"{task} assigned {n} times" for task, n in per_task.items() if n > 1]
    waiting = {k.decode() for k in r.hkeys(keys.state(dry_run=False).waiting)}
    for task in task_ids:
        if (task in per_task) == (task in waiting):
            problems.append(f"{task}: assigned {per_task[task]} times, waiting={task in waiting}")
    status: Counter[str] = Counter()
    for _, fields in r.xrange(keys.status):
        doc = orjson.loads(fields[b"data"])
        if doc["type"] == "assigned":
            status[doc["task_id"]] += 1
    if status != per_task:
        problems.append(
            f"assigned status messages differ from assignments: {(status - per_task) or (per_task - status)}"
        )
    records = [orjson.loads(f[b"data"]) for _, f in r.xrange(keys.decisions)]
    ids = Counter(d["decision_id"] for d in records)
    problems += [f"decision {i} written {n} times" for i, n in ids.items() if n > 1]
    assigned = Counter(d["task_id"] for d in records if d["outcome"] == "assigned")
    if assigned != per_task:
        problems.append("assigned decision records differ from the assignments slots received")
    problems += _check_sql(database_url, ids, assigned)
    dead = int(r.xlen(keys.dead))
    if dead:
        problems.append(f"{dead} entries dead-lettered in a run without bad input")
    return problems


def _check_sql(database_url: str, ids: Counter[str], assigned: Counter[str]) -> list[str]:
    engine = make_engine(database_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(text("select decision_id, task_id, outcome from model_routing_decisions")).all()
    finally:
        engine.dispose()
    stored = Counter(row[0] for row in rows)
    problems = []
    if set(stored) != set(ids):
        missing, extra = set(ids) - set(stored), set(stored) - set(ids)
        problems.append(f"SQL differs from the stream: {len(missing)} missing, {len(extra)} extra")
    problems += [f"decision {i} stored {n} times" for i, n in stored.items() if n > 1]
    sql_assigned = Counter(row[1] for row in rows if row[2] == "assigned")
    if sql_assigned != assigned:
        problems.append("assigned decisions in SQL differ from those on the stream")
    return problems


def settled(r: redis.Redis, keys: Keys) -> bool:
    """Every event acknowledged by the worker and every decision by the recorder."""
    for stream, group in ((keys.events, LIVE_GROUP), (keys.decisions, RECORDER_GROUP)):
        if _lag(r, stream, group):
            return False
        pending: Any = r.xpending(stream, group)
        if pending["pending"]:
            return False
    return True


def terminate_all(procs: list[RouterProcess], *, timeout_s: float = 20.0) -> list[tuple[RouterProcess, int]]:
    """SIGTERM every process at once, then collect the exit codes (a graceful stop is expected)."""
    for proc in procs:
        proc.proc.send_signal(signal.SIGTERM)
    codes = [(proc, proc.proc.wait(timeout=timeout_s)) for proc in procs]
    for proc in procs:
        proc.stop()  # closes its log
    return codes


def _lag(r: redis.Redis, stream: str, group: str) -> int:
    """Entries of `stream` not yet delivered to `group` (Redis 7 reports it as `lag`)."""
    for info in r.xinfo_groups(stream):
        name = info["name"].decode() if isinstance(info["name"], bytes) else info["name"]
        if name == group:
            lag = info.get("lag")
            return int(lag) if lag is not None else 0
    return 1  # the group does not exist yet


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]

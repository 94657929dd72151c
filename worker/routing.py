"""The routing worker: read a batch, route, commit atomically, repeat (ARCHITECTURE.md)."""

from __future__ import annotations

import contextlib
import gc
import importlib
import logging
import random
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import redis
import structlog

from router.catalog import Catalog, load_catalog
from router.engine import Effect, Router
from router.errors import ConfigError, InvalidEvent
from router.ev import Scorer
from router.values import Decision, Task
from streams.codec import encode
from streams.commit import AtomicStep, Committer, FencedOut, Replication
from streams.connection import NotReplicated, refused_by_redis
from streams.consumer import Entry, GroupReader
from streams.keys import DEFAULT_PREFIX, DRY_RUN_GROUP, LIVE_GROUP, Keys, StateKeys
from streams.lease import Lease
from streams.ledger import read_ledger
from streams.outputs import StreamCaps, add_effects, add_ledger_changes, dead_letter
from streams.schema import parse_event
from worker.backoff import compute_backoff
from worker.budget_file import load_budgets
from worker.deliveries import Deliveries
from worker.settings import Settings, router_config
from worker.signals import StopFlag

log = structlog.get_logger("router.worker")

DecisionHook = Callable[[Decision], None]
GC_YOUNG_THRESHOLD = 50_000
REPLICA_RETRY_S = 0.05


def routing_is_compiled() -> bool:
    """True when router/ runs as mypyc-compiled extensions (a regular install builds them: setup.py)."""
    return str(getattr(sys.modules[Router.__module__], "__file__", "")).endswith((".so", ".pyd"))


@dataclass(slots=True)
class _Batch:
    """A routed batch: its entries, what it decided, and the atomic step that writes it."""

    entries: list[Entry]
    effects: list[Effect]
    step: AtomicStep


class BatchAborted(Exception):
    """Processing failed unexpectedly; the batch is dropped and retried from the snapshot."""


class RoutingWorker:
    def __init__(
        self,
        settings: Settings,
        r: redis.Redis,
        *,
        dry_run: bool = False,
        catalog: Catalog | None = None,
        stop: StopFlag | None = None,
        clock: Callable[[], float] = time.time,
        on_decision: DecisionHook | None = None,
    ) -> None:
        self.settings = settings
        self.r = r
        self.dry_run = dry_run
        self.catalog = catalog or load_catalog(settings.catalog_path)
        self.stop = stop or StopFlag()
        self.clock = clock
        self.on_decision = on_decision
        self.keys = Keys(settings.prefix)
        self.state = self.keys.state(dry_run=dry_run)
        self.group = DRY_RUN_GROUP if dry_run else LIVE_GROUP
        self.reader = GroupReader(
            r,
            stream=self.keys.events,
            group=self.group,
            consumer=settings.consumer,
            count=settings.batch_size,
            block_ms=settings.block_ms,
        )
        self.committer = Committer(r, replication=_replication(settings, self.state))
        self.lease = Lease(
            r,
            leader_key=self.state.leader,
            fence_key=self.state.fence,
            holder=settings.consumer,
            ttl_ms=settings.lease_ttl_ms,
        )
        self.caps = StreamCaps(
            status=settings.status_maxlen, assign=settings.assign_maxlen, decisions=settings.decisions_maxlen
        )
        self.scorer = _load_scorer(settings.ev_scorer)
        self.budgets = load_budgets(settings.budgets_path, self.catalog)  # a bad file stops the start
        self._reload_budgets = False  # SIGHUP asked for the budgets file again
        self.router: Router | None = None
        self.models = frozenset(self.catalog.models)
        self.processed = 0
        self.decisions = 0
        self.deliveries = Deliveries(max_deliveries=settings.max_deliveries)
        self._renewed_at = 0.0
        self._ticked_at = 0.0
        self._batches = 0
        self._rand = random.Random()
        self._in_flight: _Batch | None = None  # sent, its reply not yet collected
        self._prefetched: list[Entry] | None = None  # the next batch, claimed while a step is in flight

    # -- the loop ----------------------------------------------------------------------------

    def run(self) -> int:
        self.stop.install()
        self._install_reload()
        # The ledger is long-lived and large (slots, waiting tasks, remembered assignments): collect
        # young garbage less often, so full collections do not stall a batch every few seconds.
        gc.set_threshold(GC_YOUNG_THRESHOLD, 20, 100)
        settings = self.settings.masked()
        log.info("worker starting", dry_run=self.dry_run, compiled=routing_is_compiled(), settings=settings)
        attempt = 0
        while not self.stop.stopping:
            failure = self.turn()
            if failure is None:
                attempt = 0
                continue
            attempt += 1
            delay = round(compute_backoff(attempt, rand=self._rand), 2)
            if isinstance(failure, redis.ConnectionError | redis.TimeoutError):
                log.warning("redis unavailable, backing off", error=str(failure), attempt=attempt, delay_s=delay)
            elif isinstance(failure, NotReplicated):
                # WAIT itself waited ROUTER_REPLICA_TIMEOUT_MS: no busy loop without a backoff, and a
                # replica that is back gets routing going again at once
                delay = REPLICA_RETRY_S
                self._count_replication_timeout()
                why = "routing paused: replicas behind, nothing published until they have the last step"
                log.warning(why, error=str(failure), attempt=attempt, delay_s=delay)
            else:
                why = "unexpected error; rebuilding from the snapshot"
                log.error(why, exc_info=failure, attempt=attempt, delay_s=delay)
            self.stop.wait(delay)
        self._shutdown()
        return 0

    def turn(self) -> Exception | None:
        """One turn of the run loop: a step, overlapped; on any failure the ledger is forgotten
        (rebuilt from the snapshot next turn) and the failure returned, for run() to back off."""
        try:
            self.step(overlap=True)
        except Exception as exc:  # never die: start over from the snapshot
            self._lose_state(excused=refused_by_redis(exc))
            return exc
        return None

    def step(self, *, overlap: bool = False) -> None:
        """One turn: make sure we lead with a fresh ledger, then read, route and write one batch.

        With `overlap` (the run loop), a full batch's atomic step is sent but collected only in the
        next turn, after that turn's batch has been routed: Redis runs one batch's writes while the
        worker routes the next. The read of the next batch is sent before routing and collected
        after it, so Redis answers it meanwhile too, and it never waits behind the writes. A step
        found refused or failed one turn later takes with it what was routed on top of it: the
        ledger is rebuilt from the snapshot and the entries, still unacknowledged, are reclaimed.
        Without a full batch (caught up), each step is collected at once, so nothing waits for the
        next event to be confirmed."""
        if not self._ensure_leader():
            # standing by; or, leading, what was left pending failed again as it was taken over
            # (then this pause is the retry's backoff)
            self.stop.wait(self.settings.lease_ttl_ms / 3000)
            return
        entries, self._prefetched = self._prefetched, None
        if entries is None:
            entries = self._read(block=True)
            if entries is None:
                return
        if not entries and time.monotonic() - self._ticked_at < 1.0:
            return
        # an idle turn still runs once a second: assignments can lapse with no event at all
        self._ticked_at = time.monotonic()
        backlog = overlap and len(entries) >= self.settings.batch_size and not self.stop.stopping
        asked = backlog and self._ask_next()
        batch = self._route(entries)  # meanwhile Redis runs the step in flight, if any, and the read
        if batch is None:
            self._lose_state()
            return
        if not self._finish_in_flight():  # refused: what was routed on top of it went with it
            return
        following = self._following(asked=asked, backlog=backlog)
        if following is None:
            return
        # kept before the send: should it fail, these entries were claimed and never routed
        self._prefetched = following or None
        if not self._send(batch):
            return
        # caught up: collect the step now and publish it; else it stays in flight a turn
        if not following and self._finish_in_flight():
            self._publish()

    def _following(self, *, asked: bool, backlog: bool) -> list[Entry] | None:
        """The batch after this one in a backlog, claimed now and routed next turn ([] when caught
        up; None when the read was refused)."""
        if asked:
            return self._claim(self.reader.collect)
        return self._read(block=False) if backlog else []

    def _read(self, *, block: bool) -> list[Entry] | None:
        """New entries, or None when the read was refused (no longer the leader; state is lost)."""
        return self._claim(lambda: self.reader.read(leader_key=self.state.leader, fence=self.lease.value, block=block))

    def _ask_next(self) -> bool:
        """Send the read of the next batch, to be collected after routing; False if not sent."""
        fence = self.lease.value
        return fence is not None and self.reader.send_read(leader_key=self.state.leader, fence=fence)

    def _claim(self, read: Callable[[], list[Entry]]) -> list[Entry] | None:
        """The entries a read claimed, or None when it was refused (no longer the leader)."""
        try:
            entries = read()
        except FencedOut as exc:
            self._deposed("read", exc)
            return None
        self.deliveries.claimed(entries)
        return entries

    def _ensure_leader(self) -> bool:
        now = time.monotonic()
        if self.router is not None and now - self._renewed_at < self.settings.lease_ttl_ms / 3000:
            return True
        held = self.lease.value is not None and self.lease.renew()
        if self.router is not None and not held:
            log.warning("lease lost; standing by")
            self._lose_state()
            self.deliveries.handed_over()
        if not held and not self.lease.try_acquire():
            self.deliveries.handed_over()  # another worker leads
            return False
        self._renewed_at = now
        if self.router is None:
            log.info("leading", token=self.lease.token, holder=self.settings.consumer)
            self.reader.ensure_group()
            # what an earlier leader (or this one, before it lost its state) decided and could not
            # publish goes out first, once the replicas have it
            self.committer.publish_leftover(fence=self.lease.value)
            self.router = self._restore()
            self._reclaim()
        return self.router is not None

    def _reclaim(self) -> None:
        """Process what a crashed or deposed leader left pending, before any new entry. Reads are
        fenced (only the lease holder claims new entries), so nothing is orphaned after this."""
        pending: set[str] = set()
        for entries in self.reader.reclaim():
            pending.update(entry.entry_id for entry in entries)
            self.deliveries.claimed(entries)
            self.process(entries)
            if self.router is None:
                return  # state lost again: stop claiming (each claim counts one more delivery)
        self.deliveries.prune(pending)

    def process(self, entries: list[Entry]) -> None:
        """Route and write one batch, waiting for the write."""
        batch = self._route(entries)
        if batch is None:
            self._lose_state()
        elif self._finish_in_flight() and self._send(batch) and self._finish_in_flight():
            self._publish()

    def _route(self, entries: list[Entry]) -> _Batch | None:
        """Apply a batch's events, run the matching round and lay out its atomic step; None when
        the batch failed (the failure is recorded for its entries' retries)."""
        router = self.router
        assert router is not None
        now_ms = int(self.clock() * 1000)
        self._batches += 1
        # an idle turn's id names this process and its turn too: the wall clock alone may step back
        router.begin_batch(
            entries[-1].entry_id if entries else f"tick-{now_ms}-{self.settings.consumer}-{self._batches}"
        )
        step = AtomicStep(self.state.leader, outbox=self.state.outbox if self.settings.min_replicas else None)
        if self._reload_budgets:
            self._reload(router)
        try:
            effects = self._apply_all(router, entries, step, now_ms)
            if len(entries) < self.settings.batch_size:
                # only once caught up: in a backlog, a slot's heartbeat or task.started may still be
                # queued behind this batch, and judging it silent now would take its task away
                effects += router.expire_assignments(now_ms=now_ms)
            effects += router.match(now_ms=now_ms)
            self._warn_budgets(router, now_ms)
            if router.gate.changed_flags:
                _log_gate_changes(router)
        except BatchAborted:
            return None
        except Exception as exc:  # a bug in the round: blame the batch, retry it a bounded number of times
            log.exception("routing round failed; batch will be retried", batch=len(entries))
            self.deliveries.failed(entries, exc)
            return None
        add_effects(step, self.keys, effects, caps=self.caps, dry_run=self.dry_run)
        add_ledger_changes(step, self.state, router.drain_changes(), ev_window=self.settings.ev_window)
        # acknowledged last: should a write fail, the inputs stay pending
        step.xack(self.keys.events, self.group, *[entry.entry_id for entry in entries])
        return _Batch(entries=entries, effects=effects, step=step)

    def _send(self, batch: _Batch) -> bool:
        """Hand the batch's step to Redis; False (state lost) if refused at once."""
        if not self._write(lambda: self.committer.send(batch.step, fence=self.lease.value)):
            return False
        self._in_flight = batch
        return True

    def _finish_in_flight(self) -> bool:
        """Collect the step in flight (if any) and account for its batch; False if it was refused."""
        batch, self._in_flight = self._in_flight, None
        if batch is None:
            return True
        try:
            if not self._write(self.committer.settle):
                return False
        except NotReplicated:
            self._acknowledged(batch)  # written, only not on enough replicas yet: published later
            raise
        self._acknowledged(batch)
        return True

    def _publish(self) -> None:
        """Publish the outbox of the step just settled, if replication is asked for (else its
        entries are in their streams already)."""
        self._write(lambda: self.committer.publish(fence=self.lease.value))

    def _count_replication_timeout(self) -> None:
        """For /metrics (`router_replication_waits_timed_out`): best effort, Redis may be the trouble."""
        with contextlib.suppress(redis.RedisError):
            self.r.hincrby(self.state.replication, "timeouts", 1)

    def _acknowledged(self, batch: _Batch) -> None:
        self.deliveries.acknowledged(batch.entries)
        self.processed += len(batch.entries)
        self._report(batch.effects)

    def _write(self, action: Callable[[], None]) -> bool:
        """Send or settle a step; False (state lost) when Redis refused it: no longer the leader."""
        try:
            action()
        except FencedOut as exc:
            self._deposed("write", exc)
            return False
        except Exception as exc:
            # unknown whether it landed: the snapshot will tell
            self._lose_state(excused=refused_by_redis(exc))
            raise
        return True

    def _apply_all(self, router: Router, entries: list[Entry], step: AtomicStep, now_ms: int) -> list[Effect]:
        effects: list[Effect] = []
        for entry in entries:
            error = "entry has no 'data' field" if entry.data is None else self.deliveries.exhausted(entry)
            if error is None:
                try:
                    event = parse_event(entry.data or b"", models=self.models, max_bytes=self.settings.max_event_bytes)
                    effects += router.apply(event, event_id=entry.entry_id, now_ms=now_ms)
                except InvalidEvent as exc:
                    error = str(exc)
                except Exception as exc:  # a bug or a broken scorer: retry a bounded number of times
                    self.deliveries.failed([entry], exc)
                    log.exception(
                        "processing failed; batch will be retried", entry_id=entry.entry_id, deliveries=entry.deliveries
                    )
                    raise BatchAborted from exc
            if error is not None:
                self._dead_letter(step, entry, error)
        return effects

    def _dead_letter(self, step: AtomicStep, entry: Entry, error: str) -> None:
        log.warning("input rejected", entry_id=entry.entry_id, error=error, dry_run=self.dry_run)
        if not self.dry_run:  # the live worker owns router:dead; a shadow only logs
            step.xadd(self.keys.dead, encode(dead_letter(entry.entry_id, entry.data, error)))

    def _report(self, effects: list[Effect]) -> None:
        # a line per decision is debug: every decision is on the decision stream (`router tail`,
        # `router explain`), and at thousands a second the line cost a tenth of the worker's time
        if self.on_decision is None and not log.is_enabled_for(logging.DEBUG):
            self.decisions += sum(isinstance(effect, Decision) for effect in effects)
            return
        for effect in effects:
            if not isinstance(effect, Decision):
                continue
            self.decisions += 1
            chosen = effect.chosen
            log.debug(
                "decision",
                decision_id=effect.decision_id,
                task_id=effect.task.task_id,
                outcome=effect.outcome.value,
                reason_code=effect.reason_code.value,
                model=chosen.model if chosen else None,
                slot_id=chosen.slot_id if chosen else None,
                ev=effect.thresholds.ev,
                priority=effect.task.priority,
                dry_run=effect.dry_run,
            )
            if self.on_decision is not None:
                try:
                    self.on_decision(effect)
                except Exception:  # an observer's failure is not the router's: never stop routing for it
                    log.exception("decision hook failed", decision_id=effect.decision_id)

    # -- budgets -------------------------------------------------------------------------------

    def _install_reload(self) -> None:
        if hasattr(signal, "SIGHUP") and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGHUP, self._ask_reload)

    def _ask_reload(self, signum: int, frame: object) -> None:
        self._reload_budgets = True  # read between batches, never inside one

    def _reload(self, router: Router) -> None:
        """The budgets file again (SIGHUP); a bad file keeps the budgets in force, with the reason."""
        self._reload_budgets = False
        try:
            self.budgets = load_budgets(self.settings.budgets_path, self.catalog)
        except ConfigError as exc:
            log.error("budgets not reloaded; the previous ones stay in force", error=str(exc))
            return
        router.set_budgets(self.budgets)
        log.info("budgets reloaded", budgets=[b.name for b in self.budgets])

    def _warn_budgets(self, router: Router, now_ms: int) -> None:
        if not router.budgets:
            return
        for standing, mark in router.budgets.crossings(now_ms):
            log.warning(
                "budget spent" if mark >= 100 else "budget nearly spent",
                budget=standing.budget.name,
                percent=mark,
                spent_usd=round(standing.spent_usd, 4),
                limit_usd=standing.budget.usd,
                period=standing.period,
                mode=standing.budget.mode.value,
            )

    # -- state ---------------------------------------------------------------------------------

    def _restore(self) -> Router:
        router = Router(
            self.catalog,
            # the settings' routing rules, plus what only this process knows
            config=replace(
                router_config(self.settings),
                dry_run=self.dry_run,
                id_namespace="" if self.settings.prefix == DEFAULT_PREFIX else self.settings.prefix,
            ),
            scorer=self.scorer,
            budgets=self.budgets,
        )
        router.restore(**read_ledger(self.r.pipeline(transaction=False), self.state))
        log.info("ledger restored", **router.stats(int(self.clock() * 1000)))
        return router

    def _lose_state(self, *, excused: bool = False) -> None:
        """Forget the in-memory ledger; the next turn rebuilds it from the committed snapshot, after
        the step in flight (if any) has run or been refused, so the snapshot read includes it.
        The entries claimed and not yet acknowledged will be delivered again: through no fault of
        theirs if `excused` (Redis refused or dropped one of our calls); entries claimed ahead and
        never routed, and those of a step in flight that Redis refused, are excused in any case."""
        self.router = None
        self.committer.forget()
        blameless = [entry.entry_id for entry in self._prefetched or ()]
        self._prefetched = None
        if self.reader.reading:  # what a read in flight claimed is known, if it answers
            with contextlib.suppress(Exception):
                blameless += [entry.entry_id for entry in self.reader.collect()]
            self.reader.abandon()
        blameless += self._settle_lost()
        self.deliveries.state_lost(blameless=blameless, redis_refused=excused)

    def _settle_lost(self) -> list[str]:
        """Wait for the step in flight as state is lost (no nested loss of state); returns its
        entries if Redis refused it."""
        batch, self._in_flight = self._in_flight, None
        if batch is None:
            return []
        try:
            self.committer.settle()
        except FencedOut as exc:
            self._no_longer_leading("write", exc)  # a successor leads: the entries are its to reclaim
        except NotReplicated:
            self._acknowledged(batch)  # written; its outbox is published once the replicas have it
        except Exception as exc:
            if refused_by_redis(exc):
                return [entry.entry_id for entry in batch.entries]
        else:
            self._acknowledged(batch)
        return []

    def _deposed(self, what: str, exc: FencedOut) -> None:
        """Another worker leads now: what this one claimed is its successor's to reclaim."""
        self._no_longer_leading(what, exc)
        self._lose_state()
        self.deliveries.handed_over()

    def _no_longer_leading(self, what: str, exc: FencedOut) -> None:
        log.warning(f"{what} refused: no longer the leader", error=str(exc))
        self.lease.value = None

    def _shutdown(self) -> None:
        """Finish what is under way: the step in flight, then the batch already claimed (left
        pending, it would wait for a successor and count one more delivery against it)."""
        with contextlib.suppress(Exception):
            if self._finish_in_flight() and self.router is not None and self._prefetched:
                claimed, self._prefetched = self._prefetched, None
                self.process(claimed)
            self._publish()
        with contextlib.suppress(redis.RedisError):
            self.lease.release()
        log.info("worker stopped", processed=self.processed, decisions=self.decisions)


def _replication(settings: Settings, state: StateKeys) -> Replication | None:
    if not settings.min_replicas:
        return None
    return Replication(
        min_replicas=settings.min_replicas,
        timeout_ms=settings.replica_timeout_ms,
        leader_key=state.leader,
        outbox_key=state.outbox,
        probe_key=state.replication,
    )


def _load_scorer(spec: str | None) -> Scorer | None:
    if not spec:
        return None
    module_name, _, attr = spec.partition(":")
    try:
        scorer = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"ROUTER_EV_SCORER={spec!r}: {exc}") from None
    if not callable(scorer):
        raise ConfigError(f"ROUTER_EV_SCORER={spec!r} is not callable")
    return _typed_scorer(scorer)


def _typed_scorer(fn: Callable[[Task], Any]) -> Scorer:
    return lambda task: float(fn(task))


def _log_gate_changes(router: Router) -> None:
    """One line each time the quality gate flags a (model, layer) or clears it (docs/policy.md)."""
    settings = router.gate.settings
    for flagged, figures in router.gate.changed_flags:
        log.warning(
            "quality gate: low success" if flagged else "quality gate: success recovered",
            mode=settings.mode.value,
            model=figures.model,
            layer=figures.layer,
            succeeded=figures.succeeded,
            judged=figures.judged,
            interval=[round(figures.low, 3), round(figures.high, 3)],
            min_success=settings.min_success,
            suggestion=f"lower {figures.model}'s ratings for layer {figures.layer}'s requirements" if flagged else None,
        )
    router.gate.changed_flags.clear()

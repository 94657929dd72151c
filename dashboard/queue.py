"""Live queue position and ETA for the processes that read (dashboard, API, `router explain`).

They run apart from the worker, so they rebuild a `Router` from the ledger snapshot in Redis, as a
new leader would (router/snapshot.py), and ask it `queue_places`: the same code the worker runs
gives the same order, with no second statement of the matching rules. The snapshot is written in
the worker's atomic step and read here in one MULTI, so the figures are those of one committed
moment. Rebuilding costs time in proportion to the waiting tasks (docs/dashboard.md has the
figures), so a process keeps one rebuild for at least `min_age_s`, longer when rebuilding is slow,
and rebuilds in the background rather than in a request.
"""

from __future__ import annotations

import contextlib
import gc
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import redis
import structlog

from router.catalog import Catalog
from router.config import RouterConfig
from router.engine import Router
from router.errors import RouterError
from router.values import QueuePlace
from streams.keys import Keys
from streams.ledger import read_ledger

log = structlog.get_logger("router.web")

# A rebuild is fresh for at least this long, and for this many times what it took: however many
# pages and API calls ask, the read side then spends at most about a third of a core on it.
MIN_AGE_S = 1.0
REUSE_FACTOR = 2.0


class QueueUnavailable(RouterError):
    """The snapshot could not be read or rebuilt; the message says why, for the page or the API."""


@dataclass(frozen=True, slots=True, kw_only=True)
class QueueSnapshot:
    """Every waiting task's place, as of `at_ms` (the router's clock: epoch ms)."""

    places: dict[str, QueuePlace]
    at_ms: int
    took_s: float


def read_router(r: redis.Redis, keys: Keys, catalog: Catalog, config: RouterConfig) -> Router:
    """A Router rebuilt from the live ledger snapshot, for reading only (nothing is written)."""
    router = Router(catalog, config=config)
    # in one MULTI, so the figures are those of one committed step; which tasks are assigned plays
    # no part in the queue's order
    router.restore(**read_ledger(r.pipeline(transaction=True), keys.state(dry_run=False), assigned=False))
    return router


class QueueView:
    """Queue places for one process. A rebuild is fresh for `min_age_s` (or REUSE_FACTOR x what it
    took, if longer); past that it is still served while one background thread rebuilds, so no
    request waits for a rebuild except the very first (or the first after a failed one, which then
    says why). With 100,000 tasks waiting a rebuild takes seconds, so the figures shown are that
    much older; `QueueSnapshot.at_ms` says as of when."""

    def __init__(
        self,
        load: Callable[[], Router],
        *,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        min_age_s: float = MIN_AGE_S,
    ) -> None:
        self._load = load
        self._clock = clock
        self._monotonic = monotonic
        self._min_age_s = min_age_s
        self._lock = threading.Lock()  # guards the fields below
        self._first = threading.Lock()  # held while a request builds the first snapshot
        self._snapshot: QueueSnapshot | None = None
        self._built_at = 0.0  # monotonic
        self._refreshing: threading.Thread | None = None

    def snapshot(self) -> QueueSnapshot:
        with self._lock:
            current = self._snapshot
            if current is not None:
                if self._monotonic() - self._built_at >= self._reuse_s(current):
                    self._refresh_behind()
                return current
        with self._first:  # concurrent first requests share one build
            with self._lock:
                if self._snapshot is not None:
                    return self._snapshot
            built = self._rebuild()
            with self._lock:
                self._keep(built)
            return built

    def place(self, task_id: str) -> QueuePlace | None:
        return self.snapshot().places.get(task_id)

    def wait_for_refresh(self, timeout_s: float = 60.0) -> None:
        """Block until a background rebuild under way (if any) has finished (for tests)."""
        thread = self._refreshing
        if thread is not None:
            thread.join(timeout_s)

    def _reuse_s(self, snapshot: QueueSnapshot) -> float:
        return max(self._min_age_s, REUSE_FACTOR * snapshot.took_s)

    def _keep(self, snapshot: QueueSnapshot) -> None:
        self._snapshot = snapshot
        self._built_at = self._monotonic()

    def _refresh_behind(self) -> None:
        """Start one background rebuild unless one runs (called holding the lock)."""
        if self._refreshing is not None and self._refreshing.is_alive():
            return
        self._refreshing = threading.Thread(target=self._refresh, name="queue-view", daemon=True)
        self._refreshing.start()

    def _refresh(self) -> None:
        try:
            built = self._rebuild()
        except QueueUnavailable:
            with self._lock:
                self._snapshot = None  # the next request rebuilds in its own thread, and says why
            return
        with self._lock:
            self._keep(built)

    def _rebuild(self) -> QueueSnapshot:
        started = time.perf_counter()
        with snapshot_errors():
            router = self._load()
            now_ms = int(self._clock() * 1000)
            places = router.queue_places(now_ms)
        return QueueSnapshot(places=places, at_ms=now_ms, took_s=time.perf_counter() - started)


def one_place(load: Callable[[], Router], task_id: str, now_ms: int) -> QueuePlace | None:
    """One task's place from a fresh rebuild, for a one-off reader (`router explain`): it skips
    placing every other task."""
    with snapshot_errors():
        return load().queue_place(task_id, now_ms)


@contextlib.contextmanager
def snapshot_errors() -> Iterator[None]:
    """Reading and rebuilding the snapshot fails as QueueUnavailable, with the reason. The cyclic
    garbage collector is paused meanwhile: a rebuild allocates an object or more per waiting task,
    all of which live on, so the collections it would set off find nothing and, walking a growing
    heap, cost more than the rebuild (100,000 tasks: 2.7 s paused against 4.5-6.6 s)."""
    paused = gc.isenabled()
    gc.disable()
    try:
        yield
    except redis.RedisError as exc:
        raise QueueUnavailable(f"Redis does not answer: {exc}") from None
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        # a snapshot entry edited by hand, or written by another version: say so, never a 500
        log.warning("ledger snapshot unreadable", error=repr(exc))
        raise QueueUnavailable(f"the ledger snapshot cannot be read: {exc!r}") from None
    finally:
        if paused:
            gc.enable()


def snapshot_loader(r: redis.Redis, keys: Keys, catalog: Catalog, config: RouterConfig) -> Callable[[], Router]:
    return lambda: read_router(r, keys, catalog, config)

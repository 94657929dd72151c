"""Live queue position and ETA for the processes that read (dashboard, API, `router explain`).

They run apart from the worker, so they rebuild a `Router` from the ledger snapshot in Redis, as a
new leader would (router/snapshot.py), and ask it `queue_places`: the same code the worker runs
gives the same order, with no second statement of the matching rules. The snapshot is written in
the worker's atomic step and read here in one MULTI, so the figures are those of one committed
moment. Rebuilding costs time in proportion to the waiting tasks (docs/dashboard.md has the
figures), so a process keeps one rebuild for at least `min_age_s`, longer when rebuilding is slow.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import redis
import structlog

from router.catalog import Catalog
from router.config import RouterConfig
from router.engine import Router
from router.errors import RouterError
from router.values import QueuePlace
from streams.codec import as_text, decode
from streams.keys import Keys

log = structlog.get_logger("router.web")

# A rebuild is reused for at least this long, and for this many times what it took: with 100,000
# tasks waiting, the read side then spends at most about a third of a core on it, however many
# pages and API calls ask.
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
    state = keys.state(dry_run=False)
    pipe = r.pipeline(transaction=True)
    pipe.hgetall(state.slots)
    pipe.hgetall(state.waiting)
    pipe.lrange(state.ev_window, 0, -1)
    pipe.hgetall(state.utilisation)
    pipe.hgetall(state.rates)
    slots, waiting, ev_values, utilisation, rates = pipe.execute()
    router = Router(catalog, config=config)
    router.restore(
        slots=[decode(v) for v in slots.values()],
        waiting=[decode(v) for v in waiting.values()],
        assigned={},  # which tasks were assigned plays no part in the queue's order
        ev_values=[float(v) for v in ev_values],
        utilisation={as_text(k): float(v) for k, v in utilisation.items()},
        rates={as_text(k): decode(v) for k, v in rates.items()},
    )
    return router


class QueueView:
    """Queue places for one process, rebuilt from the snapshot at most every `min_age_s` (or
    REUSE_FACTOR x the last rebuild's time, if longer). Threads that ask while a rebuild runs wait
    for it rather than start their own."""

    def __init__(
        self,
        load: Callable[[], Router],
        *,
        clock: Callable[[], float] = time.time,
        min_age_s: float = MIN_AGE_S,
    ) -> None:
        self._load = load
        self._clock = clock
        self._min_age_s = min_age_s
        self._lock = threading.Lock()
        self._snapshot: QueueSnapshot | None = None
        self._built_at = 0.0  # monotonic

    def snapshot(self) -> QueueSnapshot:
        with self._lock:
            current = self._snapshot
            if current is not None and time.monotonic() - self._built_at < self._reuse_s(current):
                return current
            self._snapshot = self._rebuild()
            self._built_at = time.monotonic()
            return self._snapshot

    def place(self, task_id: str) -> QueuePlace | None:
        return self.snapshot().places.get(task_id)

    def _reuse_s(self, snapshot: QueueSnapshot) -> float:
        return max(self._min_age_s, REUSE_FACTOR * snapshot.took_s)

    def _rebuild(self) -> QueueSnapshot:
        started = time.perf_counter()
        try:
            router = self._load()
            now_ms = int(self._clock() * 1000)
            places = router.queue_places(now_ms)
        except redis.RedisError as exc:
            raise QueueUnavailable(f"Redis does not answer: {exc}") from None
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            # a snapshot entry edited by hand, or written by another version: say so, never a 500
            log.warning("ledger snapshot unreadable", error=repr(exc))
            raise QueueUnavailable(f"the ledger snapshot cannot be read: {exc!r}") from None
        return QueueSnapshot(places=places, at_ms=now_ms, took_s=time.perf_counter() - started)


def snapshot_loader(r: redis.Redis, keys: Keys, catalog: Catalog, config: RouterConfig) -> Callable[[], Router]:
    return lambda: read_router(r, keys, catalog, config)

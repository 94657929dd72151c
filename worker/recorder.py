"""The recorder: persists decision records and usage reports from Redis streams to SQL.

It reads `{prefix}decisions` and `{prefix}usage` with a consumer group of its own, writes each
batch in one transaction of idempotent multi-row inserts (which also add the rows they inserted to
the dashboard's hourly rollup, store/rollup.py), and acknowledges only after the commit.
So every failure leaves entries pending rather than lost: a database outage holds the batch and
retries it; a Redis outage or a crash leaves it pending, and the next start reclaims it (a batch
written twice is harmless, the inserts ignore rows already there). It trims the streams only
below what the group has acknowledged. The Redis side of this (the group's reads, reclaims,
acknowledgements and trims) is streams.consumer.GroupReaders; this module is the process.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import redis
import structlog
from sqlalchemy import Engine
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, SQLAlchemyError, StatementError

from router.catalog import Catalog, load_catalog
from store.db import make_engine
from store.records import BadRecord, Pricer, Row, decision_row, usage_row
from store.writer import insert_decisions, insert_usage
from streams.codec import decode
from streams.consumer import Entry, GroupReaders
from streams.keys import RECORDER_GROUP, Keys
from streams.outputs import dead_letter
from worker.backoff import compute_backoff
from worker.settings import Settings
from worker.signals import StopFlag

log = structlog.get_logger("router.recorder")

# Stream names after the prefix, as dead letters record them (so `router dead requeue` can send an
# entry back where it came from under any prefix).
DECISIONS, USAGE = "decisions", "usage"


class DatabaseUnavailable(Exception):
    """The database refused a batch for a reason other than the rows themselves."""


@dataclass(slots=True)
class Batch:
    """Entries read together: the rows they became, and the ones that go to the dead letters."""

    acks: dict[str, list[str]] = field(default_factory=lambda: {DECISIONS: [], USAGE: []})
    decision_rows: list[tuple[str, Row]] = field(default_factory=list)  # (entry id, row)
    usage_rows: list[tuple[str, Row]] = field(default_factory=list)
    dead: list[dict[str, Any]] = field(default_factory=list)

    def __len__(self) -> int:
        return sum(len(ids) for ids in self.acks.values())


class Recorder:
    def __init__(
        self,
        settings: Settings,
        r: redis.Redis,
        *,
        stop: StopFlag | None = None,
        engine: Engine | None = None,
        catalog: Catalog | None = None,
        backoff_cap_s: float = 30.0,
        reclaim_idle_ms: int = 60_000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.r = r
        self.stop = stop or StopFlag()
        self.engine = engine or make_engine(settings.database_url)
        self.keys = Keys(settings.prefix)
        self.streams = {DECISIONS: self.keys.decisions, USAGE: self.keys.usage}
        self.consumer = settings.consumer
        self.groups = GroupReaders(
            r, streams=self.streams, group=RECORDER_GROUP, consumer=self.consumer, count=settings.recorder_batch
        )
        self.backoff_cap_s = backoff_cap_s
        self.reclaim_idle_ms = reclaim_idle_ms
        self.clock = clock
        self.pricer = _pricer(catalog or load_catalog(settings.catalog_path))
        self.recorded = 0
        self.dead_lettered = 0
        self._ready = False  # groups exist and what was pending at start has been taken over
        self._last_idle_reclaim = time.monotonic()
        self._rand = random.Random()

    # -- the loop ----------------------------------------------------------------------------

    def run(self) -> int:
        self.stop.install()
        log.info("recorder starting", settings=self.settings.masked(), group=RECORDER_GROUP, consumer=self.consumer)
        attempt = 0
        while not self.stop.stopping:
            try:
                self.run_once()
                attempt = 0
            except (redis.ConnectionError, redis.TimeoutError) as exc:
                attempt += 1
                delay = compute_backoff(attempt, cap_s=self.backoff_cap_s, rand=self._rand)
                log.warning("redis unavailable, backing off", error=str(exc), attempt=attempt, delay_s=round(delay, 2))
                self._ready = False  # reclaim on return: a batch may have been stored but not acked
                self.stop.wait(delay)
        log.info("recorder stopped", recorded=self.recorded, dead_lettered=self.dead_lettered)
        return 0

    def run_once(self, *, block_ms: int | None = None) -> int:
        """One turn: take over pending entries if just started, then read, store and acknowledge
        one batch, and trim. Returns how many entries were settled (stored or dead-lettered)."""
        settled = 0
        if not self._ready:
            self.groups.ensure_groups()
            settled += self._reclaim(min_idle_ms=0)
            self._ready = True
        elif time.monotonic() - self._last_idle_reclaim > self.reclaim_idle_ms / 1000:
            # Entries a crashed peer recorder left behind; a live peer's are younger than this.
            settled += self._reclaim(min_idle_ms=self.reclaim_idle_ms)
        entries = self.groups.read(block_ms=self.settings.block_ms if block_ms is None else block_ms)
        if entries is None:
            self._ready = False  # a stream was deleted under us: create the groups again
            return settled
        if entries:
            settled += self._settle(entries)
        self._trim_streams()
        return settled

    def drain(self, *, timeout_s: float = 30.0) -> int:
        """Record everything there is now, then return how many entries were settled (for tests
        and one-off runs). Stops at the first turn that finds nothing, or at the deadline."""
        deadline = time.monotonic() + timeout_s
        total = 0
        while time.monotonic() < deadline and not self.stop.stopping:
            n = self.run_once(block_ms=0)
            total += n
            if n == 0:
                break
        return total

    def close(self) -> None:
        self.engine.dispose()

    # -- reading -------------------------------------------------------------------------------

    def _reclaim(self, *, min_idle_ms: int) -> int:
        """Take over pending entries (all of them at start, after a crash of this or another
        recorder; later only long-idle ones), and settle them batch by batch."""
        self._last_idle_reclaim = time.monotonic()
        settled = 0
        if self.stop.stopping:
            return settled
        for name, claimed in self.groups.reclaim(min_idle_ms=min_idle_ms):
            log.info(
                "reclaimed pending entries", stream=self.streams[name], count=len(claimed), min_idle_ms=min_idle_ms
            )
            settled += self._settle({name: claimed})
            if self.stop.stopping:
                break
        return settled

    # -- storing -------------------------------------------------------------------------------

    def _settle(self, entries: dict[str, list[Entry]]) -> int:
        batch = self._parse(entries)
        if not batch:
            return 0
        if not self._store(batch):
            return 0  # stopping during a database outage: the entries stay pending
        self._acknowledge(batch)
        stored = len(batch.decision_rows) + len(batch.usage_rows)
        self.recorded += stored
        if stored:
            log.debug("batch recorded", decisions=len(batch.decision_rows), usage=len(batch.usage_rows))
        return len(batch)

    def _parse(self, entries: dict[str, list[Entry]]) -> Batch:
        batch = Batch()
        now = datetime.fromtimestamp(self.clock(), tz=UTC)
        for name, items in entries.items():
            for entry in items:
                batch.acks[name].append(entry.entry_id)
                try:
                    if entry.data is None:
                        raise BadRecord("entry has no 'data' field")
                    doc = _decode(entry.data)
                    if name == DECISIONS:
                        row = decision_row(doc, stream_id=entry.entry_id, recorded_at=now)
                        batch.decision_rows.append((entry.entry_id, row))
                    else:
                        row = usage_row(doc, stream_id=entry.entry_id, recorded_at=now, pricer=self.pricer)
                        batch.usage_rows.append((entry.entry_id, row))
                except BadRecord as exc:
                    batch.dead.append(self._dead(name, entry.entry_id, entry.data, str(exc)))
                except Exception as exc:  # a record our checks missed: reading it again fails again
                    log.exception("record could not be read", stream=self.streams[name], entry_id=entry.entry_id)
                    error = f"could not be read as a record: {type(exc).__name__}: {exc}"[:500]
                    batch.dead.append(self._dead(name, entry.entry_id, entry.data, error))
        return batch

    def _store(self, batch: Batch) -> bool:
        """Write the batch, retrying through a database outage; False if asked to stop first."""
        attempt = 0
        while True:
            try:
                self._insert(batch)
                return True
            except DatabaseUnavailable as exc:
                attempt += 1
                delay = compute_backoff(attempt, cap_s=self.backoff_cap_s, rand=self._rand)
                log.warning(
                    "database unavailable, holding the batch",
                    error=str(exc)[:500],
                    attempt=attempt,
                    delay_s=round(delay, 2),
                    entries=len(batch),
                )
                if self.stop.wait(delay):
                    return False

    def _insert(self, batch: Batch) -> None:
        decisions = [row for _, row in batch.decision_rows]
        usage = [row for _, row in batch.usage_rows]
        try:
            with self.engine.begin() as conn:
                insert_decisions(conn, decisions)
                insert_usage(conn, usage)
            return
        except SQLAlchemyError as exc:
            if not _is_row_error(exc):
                raise DatabaseUnavailable(str(exc)) from exc
            log.warning("batch rejected by the database; storing its rows one by one", error=str(exc)[:500])
        # A row the database refuses (a value out of a column's range, say) must not hold back
        # the rest: store row by row and dead-letter only the refused ones.
        batch.decision_rows = self._one_by_one(batch, DECISIONS, batch.decision_rows, insert_decisions)
        batch.usage_rows = self._one_by_one(batch, USAGE, batch.usage_rows, insert_usage)

    def _one_by_one(
        self, batch: Batch, name: str, rows: list[tuple[str, Row]], insert: Callable[[Any, list[Row]], None]
    ) -> list[tuple[str, Row]]:
        kept = []
        for entry_id, row in rows:
            try:
                with self.engine.begin() as conn:
                    insert(conn, [row])
                kept.append((entry_id, row))
            except SQLAlchemyError as exc:
                if not _is_row_error(exc):
                    raise DatabaseUnavailable(str(exc)) from exc
                raw = self.groups.readers[name].data_of(entry_id)
                batch.dead.append(self._dead(name, entry_id, raw, f"database refused the row: {str(exc)[:500]}"))
        return kept

    def _acknowledge(self, batch: Batch) -> None:
        """Dead letters and acknowledgements in one MULTI: either both happen or neither."""
        self.groups.acknowledge(batch.acks, dead_letters=batch.dead, dead_stream=self.keys.dead)
        self.dead_lettered += len(batch.dead)

    def _dead(self, name: str, entry_id: str, raw: bytes | None, error: str) -> dict[str, Any]:
        log.warning("record dead-lettered", stream=self.streams[name], entry_id=entry_id, error=error)
        doc = dead_letter(entry_id, raw, error)
        doc["stream"] = name
        return doc

    def _trim_streams(self) -> None:
        self.groups.trim(keep=self.settings.decisions_keep, limit=max(1000, 2 * self.settings.recorder_batch))


def _is_row_error(exc: SQLAlchemyError) -> bool:
    """Errors caused by the rows themselves, as opposed to the database being unreachable or the
    schema missing (which waiting, or `router db upgrade`, will fix)."""
    if isinstance(exc, DataError | IntegrityError):
        return True
    return isinstance(exc, StatementError) and not isinstance(exc, DBAPIError)  # failed binding a value


def _decode(data: bytes) -> Any:
    try:
        return decode(data)
    except ValueError as exc:
        raise BadRecord(f"not valid JSON: {exc}") from None


def _pricer(catalog: Catalog) -> Pricer:
    def price(model: str, input_tokens: int, output_tokens: int) -> float | None:
        known = catalog.models.get(model)
        return known.cost_usd(input_tokens=input_tokens, output_tokens=output_tokens) if known else None

    return price

"""`GET /metrics`: a custom collector on a registry of the app's own, read fresh at each scrape.

Decisions are counted from the tail of the decisions stream: each scrape reads the entries added
since the previous one (XRANGE from the last id seen, exclusive), so the cost of a scrape follows
the decision rate, not the table size, and the counters need neither the recorder nor the
database. They start at zero when `router web` starts, as Prometheus counters do; `rate()` and
`increase()` handle the reset. Gauges (awaiting tasks, slots, dead letters, recorder lag, budget spend)
are read from Redis at each scrape."""

from __future__ import annotations

import bisect
import math
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import orjson
import redis
from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric

from dashboard.budgets import read_budgets
from dashboard.live import SCAN_COUNT
from router.budgets import Budget
from streams.codec import as_text
from streams.keys import RECORDER_GROUP, Keys, StateKeys

# Seconds from the input event to its decision. The router takes microseconds; what shows here is
# batching, Redis round trips and, above a second, a worker that was down or behind.
LATENCY_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)
PAGE = 5_000
# A scrape reads at most this many new decisions; the rest wait for the next scrape, so one
# scrape after a long pause cannot take the dashboard down.
MAX_PER_SCRAPE = 100_000
# Layer names come from the dispatcher (and model names from whoever writes the stream); past this
# many distinct ones, new names count as "other", so a misbehaving producer cannot blow up the
# number of series. An outcome outside the protocol's three makes the entry unreadable.
MAX_LAYERS = 200
MAX_MODELS = 200
OTHER = "other"
OUTCOMES = frozenset({"assigned", "await_slot", "unroutable", "failed"})


class DecisionTail:
    """Counts decisions by (model, layer, outcome, dry_run) and live decision latency."""

    def __init__(self, r: redis.Redis, keys: Keys) -> None:
        self.r = r
        self.stream = keys.decisions
        self.last_id: str | None = None  # None until the first successful read of the stream tail
        self.counts: Counter[tuple[str, str, str, str]] = Counter()
        self.bucket_counts = [0] * (len(LATENCY_BUCKETS_S) + 1)
        self.latency_sum_s = 0.0
        self.unreadable = 0
        self._layers: set[str] = set()
        self._models: set[str] = set()
        self._lock = threading.Lock()

    def start_at_tail(self) -> None:
        """Count from the newest entry on: history before `router web` started is the table's job."""
        newest: list[Any] = self.r.xrevrange(self.stream, count=1) or []
        self.last_id = as_text(newest[0][0]) if newest else "0-0"

    def advance(self) -> None:
        with self._lock:
            if self.last_id is None:
                self.start_at_tail()
                return
            read = 0
            while read < MAX_PER_SCRAPE:
                entries: list[Any] = self.r.xrange(self.stream, min=f"({self.last_id}", count=PAGE) or []
                for entry_id, fields in entries:
                    self._count(fields)
                    self.last_id = as_text(entry_id)
                read += len(entries)
                if len(entries) < PAGE:
                    break

    def _count(self, fields: dict[Any, Any] | None) -> None:
        """Count one entry; one that cannot be read counts as unreadable, and nothing else: the
        scrape goes on past it (it is never read again)."""
        try:
            doc = orjson.loads((fields or {}).get(b"data") or b"")
            outcome = doc["outcome"]
            if outcome not in OUTCOMES:
                raise ValueError(f"outcome {outcome!r}")
            model = self._label(self._models, str(doc.get("chosen_model") or "none"), MAX_MODELS)
            layer = self._label(self._layers, str(doc.get("layer") or "unknown"), MAX_LAYERS)
            dry_run = bool(doc.get("dry_run", False))
            latency = None if dry_run else _latency_s(doc)
        except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError, ValueError):
            self.unreadable += 1
            return
        self.counts[(model, layer, outcome, "true" if dry_run else "false")] += 1
        if latency is not None:
            self.bucket_counts[bisect.bisect_left(LATENCY_BUCKETS_S, latency)] += 1
            self.latency_sum_s += latency

    @staticmethod
    def _label(seen: set[str], value: str, limit: int) -> str:
        if value in seen:
            return value
        if len(seen) >= limit:
            return OTHER
        seen.add(value)
        return value

    def families(self) -> Iterator[Metric]:
        with self._lock:
            decided = CounterMetricFamily(
                "router_decisions",
                "Decisions seen on the decisions stream",
                labels=["model", "layer", "outcome", "dry_run"],
            )
            for labels, n in sorted(self.counts.items()):
                decided.add_metric(list(labels), n)
            yield decided
            cumulative, buckets = 0, []
            for bound, n in zip((*LATENCY_BUCKETS_S, float("inf")), self.bucket_counts, strict=True):
                cumulative += n
                buckets.append(("+Inf" if bound == float("inf") else repr(bound), cumulative))
            yield HistogramMetricFamily(
                "router_decision_latency_seconds",
                "Live decisions: decided_at minus the time in the input event's stream id",
                buckets=buckets,
                sum_value=self.latency_sum_s,
            )
            yield CounterMetricFamily(
                "router_dashboard_unreadable_decisions",
                "Decision stream entries the dashboard could not read",
                value=self.unreadable,
            )


class RouterCollector:
    def __init__(
        self,
        r: redis.Redis,
        keys: Keys,
        tail: DecisionTail,
        *,
        budgets: Sequence[Budget] = (),
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.r = r
        self.keys = keys
        self.tail = tail
        self.budgets = budgets
        self.clock = clock

    def describe(self) -> list[Metric]:
        return []  # nothing to check at registration: every series is read at scrape time

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("router_redis_up", "1 when Redis answered this scrape")
        try:
            self.tail.advance()
            gauges = list(self._gauges())
        except redis.RedisError:
            up.add_metric([], 0)
            yield up
            yield from self.tail.families()
            return
        up.add_metric([], 1)
        yield up
        yield from self.tail.families()
        yield from gauges

    def _gauges(self) -> Iterator[Metric]:
        state = self.keys.state(dry_run=False)
        yield GaugeMetricFamily("router_awaiting_tasks", "Tasks awaiting a slot", value=self.r.hlen(state.waiting))
        slots = GaugeMetricFamily(
            "router_slots", "Slots the router knows, by model and state", labels=["model", "state"]
        )
        by_state: Counter[tuple[str, str]] = Counter()
        for _, raw in self.r.hscan_iter(state.slots, count=SCAN_COUNT):
            try:
                doc = orjson.loads(raw)
                by_state[(str(doc["model"]), str(doc["state"]))] += 1
            except (orjson.JSONDecodeError, KeyError, TypeError):
                by_state[("unknown", "unreadable")] += 1
        for (model, slot_state), n in sorted(by_state.items()):
            slots.add_metric([model, slot_state], n)
        yield slots
        yield GaugeMetricFamily(
            "router_dead_letters",
            "Entries in the dead-letter stream (rejected inputs)",
            value=self.r.xlen(self.keys.dead),
        )
        yield from self._recorder_lag()
        yield from self._budgets()
        yield from self._replication(state)

    def _replication(self, state: StateKeys) -> Iterator[Metric]:
        """ROUTER_MIN_REPLICAS at work: how often the worker's WAIT timed out (routing paused), and
        what its outbox holds that is not published yet."""
        timeouts = self.r.hget(state.replication, "timeouts")
        yield CounterMetricFamily(
            "router_replication_waits_timed_out",
            "Times WAIT saw fewer replicas than ROUTER_MIN_REPLICAS asks for (routing paused)",
            value=int(timeouts or 0),
        )
        yield GaugeMetricFamily(
            "router_outbox_entries",
            "Stream entries decided and not yet published (waiting for the replicas)",
            value=int(self.r.llen(state.outbox)) // 3,
        )

    def _budgets(self) -> Iterator[Metric]:
        if not self.budgets:
            return
        spent = GaugeMetricFamily(
            "router_budget_spent_usd", "Spend booked against each budget in its current period", labels=["budget"]
        )
        limit = GaugeMetricFamily("router_budget_limit_usd", "Each budget's limit per period", labels=["budget"])
        for standing in read_budgets(self.r, self.keys, self.budgets, now_ms=int(self.clock() * 1000)):
            spent.add_metric([standing.budget.name], standing.spent_usd)
            limit.add_metric([standing.budget.name], standing.budget.usd)
        yield spent
        yield limit

    def _recorder_lag(self) -> Iterator[Metric]:
        lag = GaugeMetricFamily(
            "router_recorder_lag_entries", "Entries not yet delivered to the recorder group", labels=["stream"]
        )
        pending = GaugeMetricFamily(
            "router_recorder_pending_entries",
            "Entries delivered to the recorder but not acknowledged",
            labels=["stream"],
        )
        for name, key in (("decisions", self.keys.decisions), ("usage", self.keys.usage)):
            group = self._recorder_group(key)
            if group is None:
                continue  # no recorder has run against this stream yet: no series rather than a made-up 0
            pending.add_metric([name], int(group.get("pending") or 0))
            if group.get("lag") is not None:  # Redis reports no lag when it cannot tell (after trims)
                lag.add_metric([name], int(group["lag"]))
        yield lag
        yield pending

    def _recorder_group(self, key: str) -> dict[str, Any] | None:
        try:
            groups = self.r.xinfo_groups(key)
        except redis.ResponseError:  # the stream does not exist yet
            return None
        for group in groups:
            if as_text(group.get("name", b"")) == RECORDER_GROUP:
                return dict(group)
        return None


def make_registry(
    r: redis.Redis, keys: Keys, *, budgets: Sequence[Budget] = (), clock: Callable[[], float] = time.time
) -> tuple[CollectorRegistry, DecisionTail]:
    tail = DecisionTail(r, keys)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(RouterCollector(r, keys, tail, budgets=budgets, clock=clock))
    return registry, tail


def _latency_s(doc: dict[str, Any]) -> float | None:
    event_id, decided_at = doc.get("event_id"), doc.get("decided_at")
    if not isinstance(event_id, str) or not isinstance(decided_at, int | float):
        return None
    millis, _, _ = event_id.partition("-")
    # a stream entry id's milliseconds: ASCII digits that fit in 64 bits (str.isdigit alone lets
    # other scripts' digits through, which int() refuses)
    if not (millis.isascii() and millis.isdigit() and len(millis) <= 20) or not math.isfinite(decided_at):
        return None
    # Clocks of the worker and of Redis may differ a little; a negative gap counts as zero.
    return max(0.0, (decided_at - int(millis)) / 1000)

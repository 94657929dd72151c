"""The dashboard's quality view (PROTOCOL.md v1.1): success rate and $ per successful task per
model and layer (from SQL, store/quality.py), and two metric families read at each scrape:

- `router_task_outcomes_total{model,layer,outcome}`: outcomes on the usage stream since `router
  web` started (the decisions counter's way: the stream's tail, read from the last id seen);
  `outcome` is succeeded, failed_<kind> or unreported. A report without an outcome carries no
  layer on the wire: its layer is "unknown".
- `router_quality_gate_low_success{model,layer}`: 1 for each pair the quality gate flags now,
  judged from the gate's own state in the ledger snapshot with the gate's settings.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from typing import Any

import orjson
import redis
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from dashboard.metrics import MAX_LAYERS, MAX_MODELS, OTHER, PAGE
from router.quality import GateSettings, QualityGate
from store.quality import QualityRow
from streams.codec import as_text
from streams.keys import Keys


class OutcomeCollector:
    def __init__(self, r: redis.Redis, keys: Keys, gate: GateSettings) -> None:
        self.r = r
        self.keys = keys
        self.gate = gate
        self.last_id: str | None = None
        self.counts: Counter[tuple[str, str, str]] = Counter()
        self._seen: dict[str, set[str]] = {"model": set(), "layer": set()}
        self._lock = threading.Lock()

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        try:
            with self._lock:
                self._advance()
            flagged = self._flagged()
        except redis.RedisError:
            flagged = None
        outcomes = CounterMetricFamily(
            "router_task_outcomes", "Task outcomes reported by slots", labels=["model", "layer", "outcome"]
        )
        for labels, n in sorted(self.counts.items()):
            outcomes.add_metric(list(labels), n)
        yield outcomes
        if flagged is not None:
            gauge = GaugeMetricFamily(
                "router_quality_gate_low_success",
                f"1: the quality gate ({self.gate.mode.value}) judges this model's success on the layer too low",
                labels=["model", "layer"],
            )
            for model, layer in sorted(flagged):
                gauge.add_metric([model, layer], 1)
            yield gauge

    def _advance(self) -> None:
        if self.last_id is None:
            newest: list[Any] = self.r.xrevrange(self.keys.usage, count=1) or []
            self.last_id = as_text(newest[0][0]) if newest else "0-0"
            return
        while True:
            entries: list[Any] = self.r.xrange(self.keys.usage, min=f"({self.last_id}", count=PAGE) or []
            for entry_id, fields in entries:
                self._count(fields)
                self.last_id = as_text(entry_id)
            if len(entries) < PAGE:
                return

    def _count(self, fields: dict[Any, Any] | None) -> None:
        try:
            doc = orjson.loads((fields or {}).get(b"data") or b"")
            outcome = doc.get("outcome") or "unreported"
            if outcome == "failed":
                outcome = f"failed_{doc.get('failure')}"
            model = self._label("model", str(doc.get("model") or "unknown"), MAX_MODELS)
            layer = self._label("layer", str(doc.get("layer") or "unknown"), MAX_LAYERS)
        except (orjson.JSONDecodeError, AttributeError, TypeError):
            return  # the recorder dead-letters what it cannot read; here it is just not counted
        self.counts[(model, layer, str(outcome))] += 1

    def _label(self, kind: str, value: str, limit: int) -> str:
        seen = self._seen[kind]
        if value not in seen and len(seen) >= limit:
            return OTHER
        seen.add(value)
        return value

    def _flagged(self) -> set[tuple[str, str]]:
        saved = self.r.hgetall(self.keys.state(dry_run=False).quality)
        gate = QualityGate(settings=self.gate)
        gate.restore({as_text(k): as_text(v) for k, v in saved.items()})
        return set(gate.flagged)


def quality_json(rows: list[QualityRow], *, hours: int) -> dict[str, Any]:
    """`GET /api/resources/quality`: the per (model, layer) record of the window."""
    return {"hours": hours, "by_layer": [r.to_json() | {"layer": r.group} for r in rows]}

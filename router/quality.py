"""The quality gate: per model and layer, the recent success of the tasks the router sent there.

Learnt from the outcomes the router sees (pure: no SQL), over the last `window` judged outcomes
of each (model, layer). Only `succeeded` and `capability` failures are judged: a rate limit or an
abandoned task says nothing about what the model can do. A pair is *flagged* when it has at least
`min_outcomes` judged outcomes and the upper bound of the 95% Wilson interval of its success rate
is below `min_success`: the rate is credibly too low, not just unlucky.

Modes: `off` learns nothing; `shadow` (the default) learns and reports (the worker logs each
change of a flag, `/metrics` and `router quality` show it) but routes as before; `on` also stops
rating a flagged model for that layer (verdict `low_success`, with the figures), except for an
exploration share of that layer's tasks, chosen by a hash of the task id (so the same state always
gives the same answer), which keeps outcomes coming so the estimate can recover.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Final

from router.values import Verdict

Z_95: Final = 1.959963984540054
KEY_SEP: Final = "\x1f"
EXPLORE_BUCKETS: Final = 10_000


class GateMode(StrEnum):
    OFF = "off"
    SHADOW = "shadow"
    ON = "on"


def wilson(successes: int, n: int, *, z: float = Z_95) -> tuple[float, float]:
    """The Wilson score interval of a success rate (95% by default); (0, 1) with no outcomes."""
    if n <= 0:
        return 0.0, 1.0
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclass(frozen=True, slots=True, kw_only=True)
class GateSettings:
    mode: GateMode = GateMode.SHADOW
    min_success: float = 0.7
    min_outcomes: int = 30
    window: int = 200  # judged outcomes kept per (model, layer)
    explore_share: float = 0.05  # of a flagged pair's tasks, still offered the model under `on`


@dataclass(frozen=True, slots=True, kw_only=True)
class Figures:
    model: str
    layer: str
    succeeded: int
    judged: int
    low: float
    high: float

    def text(self, min_success: float) -> str:
        return (
            f"success {self.succeeded}/{self.judged} on layer {self.layer}, 95% interval "
            f"{self.low:.2f}-{self.high:.2f} < {min_success:.2f}"
        )


@dataclass(slots=True, kw_only=True)
class QualityGate:
    settings: GateSettings = field(default_factory=GateSettings)
    # (model, layer) -> the last judged outcomes, oldest first: "1" succeeded, "0" capability failure
    history: dict[tuple[str, str], str] = field(default_factory=dict)
    flagged: dict[tuple[str, str], Figures] = field(default_factory=dict)
    dirty: set[tuple[str, str]] = field(default_factory=set)
    changed_flags: list[tuple[bool, Figures]] = field(default_factory=list)  # for the worker's log
    # True when some model is kept from some layer right now (mode `on` and a pair flagged): a plain
    # field, kept by _judge, because the engine reads it for every decision
    blocking: bool = False

    def record(self, model: str, layer: str, *, succeeded: bool) -> None:
        if self.settings.mode is GateMode.OFF:
            return
        key = (model, layer)
        self.history[key] = (self.history.get(key, "") + ("1" if succeeded else "0"))[-self.settings.window :]
        self.dirty.add(key)
        self._judge(key)

    def figures(self, model: str, layer: str) -> Figures:
        outcomes = self.history.get((model, layer), "")
        succeeded = outcomes.count("1")
        low, high = wilson(succeeded, len(outcomes))
        return Figures(model=model, layer=layer, succeeded=succeeded, judged=len(outcomes), low=low, high=high)

    def _judge(self, key: tuple[str, str]) -> None:
        figures = self.figures(*key)
        low_success = figures.judged >= self.settings.min_outcomes and figures.high < self.settings.min_success
        was = key in self.flagged
        if low_success:
            self.flagged[key] = figures
        else:
            self.flagged.pop(key, None)
        if low_success != was:
            self.changed_flags.append((low_success, figures))
        self.blocking = bool(self.flagged) and self.settings.mode is GateMode.ON

    def kept_out(self, task_id: str, layer: str, rateable: frozenset[str]) -> dict[str, tuple[Verdict, str]]:
        """Under `on`, the rateable models flagged for this layer that this task is not exploring,
        each with its verdict and figures. Never all of them: the gate does not make a task
        unroutable, it only steers it."""
        if not self.blocking:
            return {}
        if _explore_bucket(task_id) < self.settings.explore_share * EXPLORE_BUCKETS:
            return {}
        out = {
            model: (Verdict.LOW_SUCCESS, self.flagged[(model, layer)].text(self.settings.min_success))
            for model in rateable
            if (model, layer) in self.flagged
        }
        return {} if len(out) == len(rateable) else out

    def drain(self) -> dict[str, str]:
        """The snapshot form of the pairs changed since the last drain: "model\\x1flayer" -> outcomes."""
        out = {f"{model}{KEY_SEP}{layer}": self.history[(model, layer)] for model, layer in self.dirty}
        self.dirty.clear()
        return out

    def restore(self, saved: Mapping[str, str]) -> None:
        for key, outcomes in saved.items():
            model, _, layer = key.partition(KEY_SEP)
            self.history[(model, layer)] = outcomes[-self.settings.window :]
            self._judge((model, layer))
        self.changed_flags.clear()  # flags restored are not news


def _explore_bucket(task_id: str) -> int:
    """A task's fixed place in 0..EXPLORE_BUCKETS-1 (crc32: stable across processes, unlike hash())."""
    return zlib.crc32(task_id.encode()) % EXPLORE_BUCKETS

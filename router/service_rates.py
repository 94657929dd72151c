"""What the router measures about its own fleet: how long each model's slots take per task, and
how far its waiting-time estimates have been off. Both feed the matching order's time scale and
the ETA of waiting tasks, so neither needs a constant that carries a unit of the workload.

A service time runs from an assignment to the slot's next `slot.free` (the slot's whole turn:
start-up, the task, reporting back), averaged per model by an exponentially weighted mean over
completions. The weight is a count of tasks, not a time, so it means the same on a fleet whose
tasks take a minute and one whose tasks take an hour.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any, Final

# Each completion moves a model's mean this far towards what it measured: about the last 20-40
# completions carry the estimate, enough to smooth one odd task, few enough to follow a change.
SERVICE_WEIGHT: Final = 0.05
# The matching order keeps one time scale per set of models until the measured mean moves past this
# factor either way (router/engine.py `_scale_for`): equal tasks then keep their arrival order.
SCALE_DRIFT: Final = 2.0
# The ETA correction learns from each assigned task the ratio of its real wait to the ETA first
# given to it (in logarithms, so that 2x too long and 2x too short weigh the same).
CORRECTION_WEIGHT: Final = 0.05
# One task's ratio counts at most this factor either way: a task predicted to wait a moment that
# waited a long time (or the reverse) says little about the others.
CORRECTION_CLAMP: Final = 8.0
ETA_KEY: Final = "eta"  # the snapshot field holding the correction; every other field is a model's
_MODEL_PREFIX: Final = "model:"


class ServiceRates:
    """Per model, the recent mean service time in milliseconds (None until one task has finished
    on that model), and the correction the ETA applies for tasks that overtake (a factor, 1.0 until
    the first assigned task that had an ETA)."""

    __slots__ = ("_dirty", "_log_correction", "_mean_ms", "_samples")

    def __init__(self) -> None:
        self._mean_ms: dict[str, float] = {}
        self._samples: dict[str, int] = {}
        self._log_correction = 0.0
        self._dirty: set[str] = set()  # snapshot fields changed since the last drain

    def observe_service(self, model: str, service_ms: int) -> None:
        """One task's service time on `model` (assignment to the slot's next slot.free)."""
        if service_ms < 0:
            return  # a clock that went back across a takeover: no measurement
        old = self._mean_ms.get(model)
        self._mean_ms[model] = float(service_ms) if old is None else old + SERVICE_WEIGHT * (service_ms - old)
        self._samples[model] = self._samples.get(model, 0) + 1
        self._dirty.add(_MODEL_PREFIX + model)

    @property
    def measured(self) -> bool:
        """Some model's service time has been measured."""
        return bool(self._mean_ms)

    def overall_scale_ms(self) -> float | None:
        """The mean of every measured model's service time (None until one is measured)."""
        return self.scale_ms(self._mean_ms)

    def mean_ms(self, model: str) -> float | None:
        return self._mean_ms.get(model)

    def scale_ms(self, models: Iterable[str]) -> float | None:
        """The time scale of a task that these models may serve: the mean of their measured service
        times (None until one of them has been measured)."""
        wanted = models if isinstance(models, (set, frozenset)) else set(models)
        total, count = 0.0, 0
        for model, mean in self._mean_ms.items():  # in the order first measured: the same sum every time
            if model in wanted:
                total += mean
                count += 1
        return total / count if count else None

    def completions_per_s(self, slots_by_model: Mapping[str, int]) -> float | None:
        """How fast these models' slots free up while all are busy: each slot once per mean service
        time. Models not measured yet count nothing; None if none of them is measured."""
        rate, measured = 0.0, False
        for model, slots in slots_by_model.items():
            mean = self._mean_ms.get(model)
            if mean is not None and mean > 0:
                rate += slots * 1000.0 / mean
                measured = True
        return rate if measured else None

    @property
    def correction(self) -> float:
        """What the ETA multiplies its queue-and-rate estimate by: the recent ratio of real waits
        to that estimate (tasks that arrive later and go ahead make the plain estimate short)."""
        return math.exp(self._log_correction)

    def observe_wait(self, *, estimated_s: float, waited_s: float) -> None:
        """An assigned task: it waited `waited_s`; the uncorrected estimate at its first await was
        `estimated_s`."""
        if not (estimated_s > 0 and waited_s > 0) or not math.isfinite(estimated_s + waited_s):
            return
        bound = math.log(CORRECTION_CLAMP)
        ratio = max(-bound, min(bound, math.log(waited_s / estimated_s)))
        self._log_correction += CORRECTION_WEIGHT * (ratio - self._log_correction)
        self._dirty.add(ETA_KEY)

    # -- snapshot ----------------------------------------------------------------------------

    def drain(self) -> dict[str, dict[str, Any]]:
        """The snapshot fields changed since the last drain."""
        out = {key: self._field(key) for key in sorted(self._dirty)}
        self._dirty.clear()
        return out

    def _field(self, key: str) -> dict[str, Any]:
        if key == ETA_KEY:
            return {"log_correction": self._log_correction}
        model = key[len(_MODEL_PREFIX) :]
        return {"mean_ms": self._mean_ms[model], "samples": self._samples[model]}

    def restore(self, fields: Mapping[str, Mapping[str, Any]]) -> None:
        """Rebuild from the snapshot's fields (as `drain` wrote them); fields it cannot read are
        skipped, so an estimate is re-measured rather than a restart refused."""
        for key, doc in fields.items():
            try:
                if key == ETA_KEY:
                    self._log_correction = _finite(doc["log_correction"])
                elif key.startswith(_MODEL_PREFIX):
                    model = key[len(_MODEL_PREFIX) :]
                    mean = _finite(doc["mean_ms"])
                    if mean >= 0:
                        self._mean_ms[model] = mean
                        self._samples[model] = int(doc.get("samples", 1))
            except (KeyError, TypeError, ValueError):
                continue

    def snapshot(self) -> dict[str, dict[str, Any]]:
        """Every field, as a full snapshot holds them."""
        keys = [_MODEL_PREFIX + model for model in sorted(self._mean_ms)] + [ETA_KEY]
        return {key: self._field(key) for key in keys}


def _finite(value: Any) -> float:
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"not a finite number: {value!r}")
    return number

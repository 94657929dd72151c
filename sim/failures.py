"""The failure model: whether one attempt of a task on one model succeeds (docs/simulator.md).

Each attempt succeeds with a probability set by the capability margin between the model as it
truly is and the task's requirement (margin = min over required capabilities of model level -
required level; a task with no requirement has margin MARGIN_CAP), lower for harder tasks, and
separately fails transiently (rate limit, timeout) at TRANSIENT_RATE:

- margin >= 0: p = BASE_SUCCESS - HARDNESS_STEP x hardness + MARGIN_BONUS x min(margin, MARGIN_CAP);
- margin < 0: that p at margin 0, halved for each point short (-1: 1/2, -2: 1/4, ...);
- hardness 0-3 is the task's difficulty class, read from its highest required level (0: none,
  1: up to 5, 2: up to 7, 3: above 7), the four classes of sim.workload.DIFFICULTY.

The draw is a hash of (seed, task, attempt, model), not a shared RNG stream: the same attempt of
the same task on the same model has the same luck whatever the policy or fleet, so policies are
compared on the same luck. The model's true ratings may differ from the catalogue the policies see
(the mis-rated scenario: `misrated`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from router.catalog import Catalog
from router.values import Failure

BASE_SUCCESS = 0.97
HARDNESS_STEP = 0.03
MARGIN_BONUS = 0.01
MARGIN_CAP = 3
TRANSIENT_RATE = 0.02
MISRATED_BY = 2  # the mis-rated scenario: the catalogue rates the model this many points too high
_HARDNESS_BOUNDS = (0, 5, 7)  # highest required level above each bound: one class harder
_UNIT = float(2**64)


def hardness(requires: Mapping[str, int]) -> int:
    """The task's difficulty class, 0 (no requirement) to 3 (a level above 7 required)."""
    top = max(requires.values(), default=0)
    return sum(1 for bound in _HARDNESS_BOUNDS if top > bound)


def margin(capabilities: Mapping[str, int], requires: Mapping[str, int]) -> int:
    if not requires:
        return MARGIN_CAP
    return min(capabilities.get(name, 0) - needed for name, needed in requires.items())


def success_probability(capabilities: Mapping[str, int], requires: Mapping[str, int]) -> float:
    """The chance an attempt succeeds when no transient failure strikes it."""
    m = margin(capabilities, requires)
    at_zero = BASE_SUCCESS - HARDNESS_STEP * hardness(requires)
    if m < 0:
        return at_zero * 0.5 ** (-m)
    return min(1.0, at_zero + MARGIN_BONUS * min(m, MARGIN_CAP))


@dataclass(frozen=True, slots=True, kw_only=True)
class FailureModel:
    """Draws attempt outcomes from the models' true ratings (`truth`) with a fixed seed."""

    truth: Catalog
    seed: int
    transient_rate: float = TRANSIENT_RATE
    _cache: dict[tuple[str, str], float] = field(default_factory=dict, compare=False)

    def draw(self, *, task_id: str, attempt: int, model: str, requires: Mapping[str, int]) -> Failure | None:
        """None if the attempt succeeds, else why it failed."""
        u_transient, u_capability = self._uniforms(task_id, attempt, model)
        if u_transient < self.transient_rate:
            return Failure.TRANSIENT
        key = (model, ",".join(f"{k}={v}" for k, v in sorted(requires.items())))
        p = self._cache.get(key)
        if p is None:
            p = self._cache[key] = success_probability(self.truth.models[model].capabilities, requires)
        return None if u_capability < p else Failure.CAPABILITY

    def _uniforms(self, task_id: str, attempt: int, model: str) -> tuple[float, float]:
        digest = hashlib.blake2b(f"{self.seed}\x1f{task_id}\x1f{attempt}\x1f{model}".encode(), digest_size=16).digest()
        return int.from_bytes(digest[:8], "big") / _UNIT, int.from_bytes(digest[8:], "big") / _UNIT


def misrated_truth(catalog: Catalog, model: str, *, by: int = MISRATED_BY) -> Catalog:
    """The catalogue with `model` rated `by` points lower on every capability: how it behaves when
    the catalogue overrates it."""
    if model not in catalog.models:
        raise KeyError(model)
    spec = catalog.models[model]
    lowered = replace(spec, capabilities={k: max(0, v - by) for k, v in spec.capabilities.items()})
    return replace(catalog, models={**catalog.models, model: lowered}, _rateable_cache={})

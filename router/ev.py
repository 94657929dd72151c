"""Expected value (EV): where a task's EV comes from, and the rolling P50/P90 it is judged by."""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from router.sortedseq import SortedSeq
from router.values import Task

Scorer = Callable[[Task], float]

DEFAULT_WINDOW = 1000
SCORER_CACHE_S = 60.0


class EVWindow:
    """EVs of the most recent tasks, with percentiles in O(log n) per update."""

    def __init__(self, *, size: int = DEFAULT_WINDOW, values: Iterable[float] = ()) -> None:
        if size < 1:
            raise ValueError("EV window size must be at least 1")
        self.size = size
        self._recent: deque[float] = deque()
        self._sorted: SortedSeq[float] = SortedSeq()
        self._cache: dict[float, float | None] = {}  # percentiles since the last change
        for value in values:
            self.add(value)

    def __len__(self) -> int:
        return len(self._recent)

    def add(self, ev: float) -> None:
        self._cache.clear()
        self._recent.append(ev)
        self._sorted.add(ev)
        if len(self._recent) > self.size:
            self._sorted.remove(self._recent.popleft())

    def values(self) -> list[float]:
        """Oldest first: what a snapshot stores."""
        return list(self._recent)

    def percentile(self, q: float) -> float | None:
        """Linear-interpolated percentile (q in 0..1); None while the window is empty."""
        if q in self._cache:
            return self._cache[q]
        value = self._compute(q)
        self._cache[q] = value
        return value

    def _compute(self, q: float) -> float | None:
        n = len(self._sorted)
        if n == 0:
            return None
        pos = q * (n - 1)
        low = math.floor(pos)
        high = min(low + 1, n - 1)
        a, b = self._sorted[low], self._sorted[high]
        f = pos - low
        # a*(1-f) + b*f never overflows for finite a and b (b - a can, and inf * 0 is NaN)
        return float(a * (1 - f) + b * f)

    def rank(self, ev: float) -> float:
        """Where `ev` stands among the window's values, 0 (below all) to 1 (above all), ties
        counting half; 0.5 while the window is empty. Free of EV's unit, whatever the scorer's."""
        n = len(self._sorted)
        if n == 0:
            return 0.5
        below = self._sorted.bisect_left(ev)
        not_above = self._sorted.bisect_left(math.nextafter(ev, math.inf)) if ev < math.inf else n
        return (below + not_above) / (2 * n)

    @property
    def p50(self) -> float | None:
        return self.percentile(0.5)

    @property
    def p90(self) -> float | None:
        return self.percentile(0.9)


@dataclass(slots=True)
class _Cached:
    ev: float
    at_s: float


class EVResolver:
    """Step 3 of POLICY.md: the task's own EV, else the scorer (cached per task), else priority/100."""

    def __init__(self, *, scorer: Scorer | None = None, cache_s: float = SCORER_CACHE_S, cache_max: int = 100_000):
        self.scorer = scorer
        self.cache_s = cache_s
        self.cache_max = cache_max
        self._cache: dict[str, _Cached] = {}

    def resolve(self, task: Task, *, now_s: float) -> float:
        if task.ev is not None:
            return float(task.ev)
        if self.scorer is None:
            return task.priority / 100
        hit = self._cache.get(task.task_id)
        if hit is not None and now_s - hit.at_s < self.cache_s:
            return hit.ev
        ev = float(self.scorer(task))
        if not math.isfinite(ev):
            raise ValueError(f"EV scorer returned {ev!r} for task {task.task_id!r}")
        self._remember(task.task_id, _Cached(ev=ev, at_s=now_s))
        return ev

    def _remember(self, task_id: str, entry: _Cached) -> None:
        self._cache.pop(task_id, None)
        self._cache[task_id] = entry
        if len(self._cache) > self.cache_max:
            # dicts keep insertion order, so the first key is the oldest entry
            self._cache.pop(next(iter(self._cache)))

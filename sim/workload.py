"""The explicit, seeded mapping from trace rows to agent tasks (documented in docs/simulator.md).

A trace row gives an arrival time and the token shape of one model call. A simulated task is an
agent session of several such calls. What the trace does not say is drawn from a seeded RNG in a
fixed order per row, so one seed gives the same tasks whatever the fleet or policy:

- difficulty: a uniformly drawn SWE-bench Verified annotation (a real easy/medium/hard mix); rows
  with BurstGPT's model column draw GPT-4 rows from the two hardest classes, ChatGPT rows from the
  two easiest (the slices' GPT-4 share, ~20%, is close to SWE-bench's 22% of the two hardest);
- requires, layer, base run time and EV weight: from the difficulty class (DIFFICULTY below);
- priority: a band (60% 10-49, 30% 50-89, 10% 90-99), uniform inside it; 2% carry quest_priority 95-99;
- EV: priority / 100 x class weight x a log-normal factor (sigma 0.35);
- tokens: the row's input and output tokens x the number of turns (one per minute of base run time).
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, Protocol

from sim.traces import Arrival, load_difficulties


@dataclass(frozen=True, slots=True, kw_only=True)
class DifficultyClass:
    requires: Mapping[str, int]
    layer: str
    run_min: float  # mean base run time in minutes (the draw is uniform in 0.5x..1.5x)
    ev_weight: float


# Keys are SWE-bench Verified's difficulty labels, easiest first. With the packaged catalogue the
# first two are served by every tier, "1-4 hours" needs tier 2 or 3, ">4 hours" only tier 3 (opus).
DIFFICULTY: dict[str, DifficultyClass] = {
    "<15 min fix": DifficultyClass(requires={}, layer="chore", run_min=6.0, ev_weight=0.5),
    "15 min - 1 hour": DifficultyClass(requires={"coding": 5}, layer="implementation", run_min=15.0, ev_weight=1.0),
    "1-4 hours": DifficultyClass(requires={"coding": 7, "reasoning": 6}, layer="design", run_min=20.0, ev_weight=2.0),
    ">4 hours": DifficultyClass(requires={"coding": 9, "reasoning": 9}, layer="strategy", run_min=45.0, ev_weight=3.0),
}
HARD_CLASSES = ("1-4 hours", ">4 hours")
EASY_CLASSES = ("<15 min fix", "15 min - 1 hour")


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskMapping:
    """The `sessions` load model: agent sessions of 6-45 minutes, difficulty from SWE-bench Verified."""

    name: ClassVar[str] = "sessions"
    seed: int = 7
    offered_load: float = 0.75
    priority_bands: tuple[tuple[float, int, int], ...] = ((0.6, 10, 49), (0.3, 50, 89), (0.1, 90, 99))
    quest_share: float = 0.02
    ev_sigma: float = 0.35
    minutes_per_turn: float = 1.0
    difficulty: Mapping[str, DifficultyClass] = field(default_factory=lambda: dict(DIFFICULTY))

    def tasks(self, arrivals: Sequence[Arrival], *, slot_count: int, traces_dir: Path | None = None) -> list[SimTask]:
        difficulties = load_difficulties(traces_dir, known=self.difficulty)
        return build_tasks(arrivals, difficulties, slot_count=slot_count, mapping=self)


class LoadModel(Protocol):
    """A seeded mapping from trace rows to tasks (sim/loads.py lists them; docs/simulator.md documents each).

    `tasks` must draw from one RNG seeded with `seed`, the same number of draws per row in a fixed
    order, and must not look at the fleet beyond its slot count (for the offered load), so a seed
    gives the same tasks whatever the fleet or policy.
    """

    name: ClassVar[str]

    @property
    def seed(self) -> int: ...
    @property
    def offered_load(self) -> float: ...
    def tasks(
        self, arrivals: Sequence[Arrival], *, slot_count: int, traces_dir: Path | None = None
    ) -> list[SimTask]: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class SimTask:
    task_id: str
    arrival_ms: int
    priority: int
    quest_priority: int | None
    ev: float
    requires: Mapping[str, int]
    layer: str
    difficulty: str
    base_run_s: float
    input_tokens: int
    output_tokens: int
    # run time on a model of each tier, where it depends on the model (the `calls` load model);
    # a tier not listed runs base_run_s. A pool's speed multiplies either.
    run_s_by_tier: Mapping[int, float] = field(default_factory=dict)

    def run_s(self, tier: int) -> float:
        return self.run_s_by_tier.get(tier, self.base_run_s)


@dataclass(frozen=True, slots=True, kw_only=True)
class _Drawn:
    difficulty: str
    priority: int
    quest_priority: int | None
    ev: float
    base_run_s: float
    turns: int


def build_tasks(
    arrivals: Sequence[Arrival], difficulties: Sequence[str], *, slot_count: int, mapping: TaskMapping | None = None
) -> list[SimTask]:
    """Tasks for these arrivals, with arrival times rescaled so the offered load is `mapping.offered_load`.

    Offered load = arrival rate x mean base run time / slots: the share of the fleet the work would
    keep busy at speed 1.0. Rescaling time keeps the trace's burst shape and only changes its pace.
    """
    m = mapping or TaskMapping()
    rng = random.Random(m.seed)
    drawn = [_draw(rng, a, difficulties, m) for a in arrivals]
    scale = time_scale(arrivals, [d.base_run_s for d in drawn], slot_count=slot_count, offered_load=m.offered_load)
    tasks = []
    for i, (a, d) in enumerate(zip(arrivals, drawn, strict=True)):
        cls = m.difficulty[d.difficulty]
        tasks.append(
            SimTask(
                task_id=f"t{i:06d}",
                arrival_ms=round(a.at_s * scale * 1000),
                priority=d.priority,
                quest_priority=d.quest_priority,
                ev=d.ev,
                requires=dict(cls.requires),
                layer=cls.layer,
                difficulty=d.difficulty,
                base_run_s=d.base_run_s,
                input_tokens=a.input_tokens * d.turns,
                output_tokens=a.output_tokens * d.turns,
            )
        )
    return tasks


def time_scale(arrivals: Sequence[Arrival], run_s: Sequence[float], *, slot_count: int, offered_load: float) -> float:
    """The factor on trace times that makes arrival rate x mean run time / slots = the offered load."""
    span_s = arrivals[-1].at_s - arrivals[0].at_s
    if len(arrivals) < 2 or span_s <= 0:
        return 1.0
    trace_rate = (len(arrivals) - 1) / span_s
    target_rate = offered_load * slot_count / (sum(run_s) / len(run_s))
    return trace_rate / target_rate


def draw_priority(
    rng: random.Random, bands: Sequence[tuple[float, int, int]], quest_share: float
) -> tuple[int, int | None]:
    """Priority from its bands and an optional quest_priority 95-99: always four draws."""
    band_draw, in_band, quest_draw, quest_level = rng.random(), rng.random(), rng.random(), rng.randrange(95, 100)
    return _priority(band_draw, in_band, bands), quest_level if quest_draw < quest_share else None


def _draw(rng: random.Random, a: Arrival, difficulties: Sequence[str], m: TaskMapping) -> _Drawn:
    # Every row draws the same number of values in the same order, so one row's draws never shift another's.
    label = difficulties[rng.randrange(len(difficulties))]
    if a.model_hint is not None:
        pool = HARD_CLASSES if a.model_hint.upper().startswith("GPT-4") else EASY_CLASSES
        if label not in pool:
            label = pool[rng.randrange(2)]
        else:
            rng.randrange(2)
    else:
        rng.randrange(2)
    priority, quest_priority = draw_priority(rng, m.priority_bands, m.quest_share)
    noise, run_draw = rng.gauss(0.0, m.ev_sigma), rng.random()
    cls = m.difficulty[label]
    base_run_s = cls.run_min * 60 * (0.5 + run_draw)
    return _Drawn(
        difficulty=label,
        priority=priority,
        quest_priority=quest_priority,
        ev=round(priority / 100 * cls.ev_weight * math.exp(noise), 6),
        base_run_s=base_run_s,
        turns=max(1, round(base_run_s / 60 / m.minutes_per_turn)),
    )


def _priority(band_draw: float, in_band: float, bands: Sequence[tuple[float, int, int]]) -> int:
    total = sum(w for w, _, _ in bands)
    acc = 0.0
    for weight, low, high in bands:
        acc += weight / total
        if band_draw < acc:
            return low + min(int(in_band * (high - low + 1)), high - low)
    _, low, high = bands[-1]
    return high

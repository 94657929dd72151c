"""The `calls` load model: short tasks (about a minute) whose run time comes from the row's output tokens.

Independent of the `sessions` mapping (sim/workload.py) in every drawn field, so a matching order
tuned on one is tried on a workload it was not tuned on (docs/simulator.md, "The calls load model"):

- a task is one short agent step: 3-12 model calls shaped like the trace row (its input and output
  tokens each), plus a fixed overhead for everything that is not decoding (prefill, tool runs,
  network);
- run time on a model = overhead + calls x output tokens / the model tier's decoding speed, so a
  premium slot is slower for the same task, as it is in practice;
- kind (requires, layer): a fixed mix of lookups, edits, reviews and plans (CALL_KINDS), not
  SWE-bench's;
- priority: its own bands; EV: mostly what the work is (the kind's value, a wide log-normal) and
  only weakly its priority.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from sim.traces import Arrival
from sim.workload import SimTask, draw_priority, time_scale

# Output tokens per second of one stream by tier, rounded from public per-model measurements of
# 2025 (Artificial Analysis): small models (Haiku, MiniMax, GLM class) decode at 100-200 tok/s, mid
# models (Sonnet, Codex class) at 60-90, premium ones (Opus, GPT-5 class) at 35-60.
TOKENS_PER_S_BY_TIER: dict[int, float] = {1: 120.0, 2: 70.0, 3: 45.0}
REFERENCE_TIER = 2  # the offered load is computed with run times at this tier's speed
OVERHEAD_S = 30.0  # per task: prefill, tool calls and network, whatever the model


@dataclass(frozen=True, slots=True, kw_only=True)
class CallKind:
    requires: Mapping[str, int]
    layer: str
    share: float  # of the tasks
    value: float  # EV scale


# With the packaged catalogue: lookups and edits run on every tier, reviews on sonnet or opus,
# plans on opus only (the premium-only tasks, 5%: a short task rarely needs the top tier).
CALL_KINDS: dict[str, CallKind] = {
    "lookup": CallKind(requires={}, layer="chore", share=0.45, value=0.2),
    "edit": CallKind(requires={"coding": 5}, layer="implementation", share=0.35, value=0.6),
    "review": CallKind(requires={"coding": 7, "reasoning": 6}, layer="design", share=0.15, value=1.5),
    "plan": CallKind(requires={"coding": 9, "reasoning": 9}, layer="strategy", share=0.05, value=4.0),
}


@dataclass(frozen=True, slots=True, kw_only=True)
class CallMapping:
    """The `calls` load model's parameters; `tasks` maps trace rows to tasks with them."""

    name: ClassVar[str] = "calls"
    seed: int = 7
    offered_load: float = 0.75
    priority_bands: tuple[tuple[float, int, int], ...] = ((0.55, 20, 59), (0.38, 60, 89), (0.07, 90, 99))
    quest_share: float = 0.01
    ev_sigma: float = 0.8
    calls: tuple[int, int] = (3, 12)  # calls per task, uniform, inclusive
    overhead_s: float = OVERHEAD_S
    tokens_per_s_by_tier: Mapping[int, float] = field(default_factory=lambda: dict(TOKENS_PER_S_BY_TIER))
    kinds: Mapping[str, CallKind] = field(default_factory=lambda: dict(CALL_KINDS))

    def run_s(self, output_tokens: int, tier: int) -> float:
        return self.overhead_s + output_tokens / self.tokens_per_s_by_tier[tier]

    def tasks(self, arrivals: Sequence[Arrival], *, slot_count: int, traces_dir: Path | None = None) -> list[SimTask]:
        rng = random.Random(self.seed)
        drawn = [self._draw(rng, a) for a in arrivals]
        base = [t.base_run_s for t in drawn]
        scale = time_scale(arrivals, base, slot_count=slot_count, offered_load=self.offered_load)
        return [
            SimTask(
                task_id=f"t{i:06d}",
                arrival_ms=round(a.at_s * scale * 1000),
                priority=t.priority,
                quest_priority=t.quest_priority,
                ev=t.ev,
                requires=t.requires,
                layer=t.layer,
                difficulty=t.difficulty,
                base_run_s=t.base_run_s,
                input_tokens=t.input_tokens,
                output_tokens=t.output_tokens,
                run_s_by_tier=t.run_s_by_tier,
            )
            for i, (a, t) in enumerate(zip(arrivals, drawn, strict=True))
        ]

    def _draw(self, rng: random.Random, a: Arrival) -> SimTask:
        # Seven draws in this order for every row: kind, priority (four), EV noise, calls.
        kind_name = _pick(rng.random(), self.kinds)
        priority, quest_priority = draw_priority(rng, self.priority_bands, self.quest_share)
        noise = rng.gauss(0.0, self.ev_sigma)
        calls = rng.randint(*self.calls)
        kind = self.kinds[kind_name]
        output_tokens = a.output_tokens * calls
        by_tier = {tier: self.run_s(output_tokens, tier) for tier in self.tokens_per_s_by_tier}
        return SimTask(
            task_id="",
            arrival_ms=0,
            priority=priority,
            quest_priority=quest_priority,
            # 0.5x-1.5x by priority: an urgent lookup is worth a little more, never more than a plan
            ev=round(kind.value * (0.5 + priority / 100) * math.exp(noise), 6),
            requires=dict(kind.requires),
            layer=kind.layer,
            difficulty=kind_name,
            base_run_s=by_tier[REFERENCE_TIER],
            input_tokens=a.input_tokens * calls,
            output_tokens=output_tokens,
            run_s_by_tier=by_tier,
        )


def _pick(draw: float, kinds: Mapping[str, CallKind]) -> str:
    total = sum(k.share for k in kinds.values())
    acc = 0.0
    for name, kind in kinds.items():
        acc += kind.share / total
        if draw < acc:
            return name
    return list(kinds)[-1]

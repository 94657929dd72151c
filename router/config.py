"""The router's settings: rule timings, the EV window, and the matching order's refinements."""

from __future__ import annotations

from dataclasses import dataclass

from router.escalation import DEFAULT_MAX_ESCALATIONS, DEFAULT_MAX_RETRIES
from router.quality import GateMode, GateSettings

_GATE = GateSettings()


@dataclass(frozen=True, slots=True, kw_only=True)
class RouterConfig:
    stale_after_s: float = 90.0
    ev_window: int = 1000
    remember_assigned: int = 100_000  # task ids kept to ignore re-published, already assigned tasks
    # An assigned task goes back to waiting when its slot has not reported task.started within this
    # time and has also gone silent (no heartbeat within stale_after_s); slot.gone before start
    # returns it at once. Slots that never send task.started but keep heartbeating keep their task.
    assignment_timeout_s: float = 60.0
    dry_run: bool = False
    # Put in front of every decision id, so routers of different pools (prefixes) that share one
    # decision store never mint the same id from equal stream entry ids.
    id_namespace: str = ""
    # Matching order refinement (POLICY.md "On every event"): a task that only one tier can serve
    # goes before other tasks that could use the same free slot. Measured in docs/simulator.md.
    sole_tier_first: bool = True
    # The non-override matching order (docs/policy.md "Matching order"): a task's score is its
    # priority + ev_rank_points x its EV's rank in the EV window (0 lowest .. 1 highest), and each
    # mean service time of its models that it has waited adds ageing_points_per_service_time points.
    # Both are plain numbers, free of any unit of the workload: the time scale is measured (router/
    # service_rates.py), so the same setting means the same on minute-long and hour-long tasks.
    # Before any task has finished there is no ageing. 0 turns each off.
    ageing_points_per_service_time: float = 5.0
    ev_rank_points: float = 50.0
    # Failed outcomes (PROTOCOL.md v1.1): how many escalations and retries a task gets (router/escalation.py).
    max_escalations: int = DEFAULT_MAX_ESCALATIONS
    max_retries: int = DEFAULT_MAX_RETRIES
    # The quality gate (router/quality.py): "off", "shadow" (report only, the default) or "on"; it flags a
    # (model, layer) with at least quality_min_outcomes judged outcomes (of the last quality_window) whose
    # 95% Wilson upper bound is below min_success; under "on" a quality_explore share of tasks still may use it.
    quality_gate: str = _GATE.mode.value
    min_success: float = _GATE.min_success
    quality_min_outcomes: int = _GATE.min_outcomes
    quality_window: int = _GATE.window
    quality_explore: float = _GATE.explore_share

    def gate_settings(self) -> GateSettings:
        return GateSettings(
            mode=GateMode(self.quality_gate),
            min_success=self.min_success,
            min_outcomes=self.quality_min_outcomes,
            window=self.quality_window,
            explore_share=self.quality_explore,
        )

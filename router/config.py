"""The router's settings: rule timings, the EV window, and the matching order's refinements."""

from __future__ import annotations

from dataclasses import dataclass, field

from router.escalation import Limits
from router.quality import GateSettings


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
    # Waiting-time ageing (0: off): each this many seconds a non-override task has waited counts as
    # one more priority point in the matching order, so low priorities are not starved in a backlog.
    # 45 s rather than the earlier 300 s: with EV points on (below) the all-task p95 wait stays within
    # 1.25x fifo-capable's on every reference scenario (300 s: up to 1.5x); docs/simulator.md.
    age_s_per_priority_point: float = 45.0
    # EV in the matching order (0: off): a non-override task's place is priority + EV x this (+ ageing),
    # so among tasks of similar priority the one worth more goes first. Tasks just under the moving P90
    # (no override) but in the top EV decile otherwise queue behind higher-priority, lower-EV work. 50
    # with 45 s ageing meets every goal on 5 of the 6 reference scenarios; no ageing step alone did.
    # With no scorer EV = priority / 100: the order stays priority's, ageing weighs 1.5x less against it.
    ev_priority_points: float = 50.0
    # Failed outcomes (PROTOCOL.md v1.1): how many escalations and retries a task gets (router/escalation.py).
    outcome_limits: Limits = field(default_factory=Limits)
    # The quality gate (router/quality.py): off, shadow (report only, the default) or on.
    quality_gate: GateSettings = field(default_factory=GateSettings)

"""Results for people and machines: a terminal table, the goals checked, and JSON."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from router.errors import ConfigError
from sim.metrics import MISRATED_WINDOW, Metrics, misrated_failure_shares
from sim.outputs import prepare_parent
from sim.run import ScenarioResult

COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("policy", "policy", "{}"),
    ("total_usd", "total $", "{:.2f}"),
    ("usd_per_task", "$/task", "{:.4f}"),
    ("lower_bound_usd", "lower bound $", "{:.2f}"),
    ("premium_low_value_share", "premium low-value", "{:.1%}"),
    ("capability_violations", "violations", "{}"),
    ("wait_p50_s", "wait p50 s", "{:.0f}"),
    ("wait_p95_s", "wait p95 s", "{:.0f}"),
    ("top_decile_wait_p50_s", "top-EV p50 s", "{:.0f}"),
    ("top_decile_wait_p95_s", "top-EV p95 s", "{:.0f}"),
    ("premium_only_wait_p50_s", "prem-only p50 s", "{:.0f}"),
    ("premium_only_wait_p95_s", "prem-only p95 s", "{:.0f}"),
    ("completed", "completed", "{}"),
    ("makespan_s", "makespan s", "{:.0f}"),
    ("eta_mape", "ETA error", "{:.0%}"),
)
# with a failure model (sim.failures): how the attempts went
OUTCOME_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("success_rate", "success", "{:.1%}"),
    ("escalations_per_task", "escalations/task", "{:.3f}"),
    ("retries_per_task", "retries/task", "{:.3f}"),
    ("wasted_usd", "wasted $", "{:.2f}"),
    ("usd_per_success", "$/success", "{:.4f}"),
)


def table(metrics: Sequence[Metrics], *, markdown: bool = False, outcomes: bool = False) -> str:
    columns = COLUMNS + OUTCOME_COLUMNS if outcomes else COLUMNS
    rows = [[_format(getattr(m, key), fmt) for key, _, fmt in columns] for m in metrics]
    heads = [head for _, head, _ in columns]
    if markdown:
        lines = ["| " + " | ".join(heads) + " |", "|" + "---|" * len(heads)]
        return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(heads)]
    out = ["  ".join(h.rjust(w) for h, w in zip(heads, widths, strict=True))]
    out += ["  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join(out)


def _format(value: Any, fmt: str) -> str:
    if isinstance(value, float) and math.isnan(value):
        return "n/a"  # a figure the policy does not give (an ETA from a baseline)
    return fmt.format(value)


@dataclass(frozen=True, slots=True, kw_only=True)
class Goal:
    name: str
    target: str
    value: float
    met: bool

    def to_json(self) -> dict[str, Any]:
        return {"goal": self.name, "target": self.target, "value": _finite(self.value), "met": self.met}


def goals(metrics: Sequence[Metrics], *, policy: str = "router", baseline: str = "fifo-capable") -> list[Goal]:
    """Issue 6 part 3, for one policy against the fifo-capable baseline of the same scenario."""
    by_name = {m.policy: m for m in metrics}
    if policy not in by_name or baseline not in by_name:
        return []
    r, b = by_name[policy], by_name[baseline]
    top = _ratio(r.top_decile_wait_p95_s, b.top_decile_wait_p95_s)
    only = _ratio(r.premium_only_wait_p95_s, b.premium_only_wait_p95_s)
    every = _ratio(r.wait_p95_s, b.wait_p95_s)
    cost = _ratio(r.total_usd, b.total_usd)
    return [
        Goal(
            name="premium low-value share",
            target="<= 2%",
            value=r.premium_low_value_share,
            met=r.premium_low_value_share <= 0.02,
        ),
        Goal(name="capability violations", target="0", value=r.capability_violations, met=r.capability_violations == 0),
        Goal(name="top-EV p95 wait / fifo-capable", target="<= 0.2", value=top, met=top <= 0.2),
        Goal(name="premium-only p95 wait / fifo-capable", target="<= 1.0", value=only, met=only <= 1.0),
        Goal(name="all-task p95 wait / fifo-capable", target="<= 1.5", value=every, met=every <= 1.5),
        Goal(name="cost / fifo-capable", target="<= 1.0", value=cost, met=cost <= 1.0),
    ]


def outcome_goals(metrics: Sequence[Metrics], *, policy: str = "router") -> list[Goal]:
    """Issue 17's simulator goals: $ per successful task <= 0.5x premium's and <= fifo-capable's
    (both escalating), and a success rate within 2 points of premium's."""
    by_name = {m.policy: m for m in metrics}
    if policy not in by_name or "premium" not in by_name or "fifo-capable" not in by_name:
        return []
    r, p, f = by_name[policy], by_name["premium"], by_name["fifo-capable"]
    to_premium = _ratio(r.usd_per_success, p.usd_per_success)
    to_fifo = _ratio(r.usd_per_success, f.usd_per_success)
    gap = p.success_rate - r.success_rate
    return [
        Goal(name="$/success / premium", target="<= 0.5", value=to_premium, met=to_premium <= 0.5),
        Goal(name="$/success / fifo-capable", target="<= 1.0", value=to_fifo, met=to_fifo <= 1.0),
        Goal(name="success rate, points below premium", target="<= 2", value=gap * 100, met=gap <= 0.02),
    ]


def goals_text(goal_list: Sequence[Goal]) -> str:
    return "\n".join(
        f"  {'met ' if g.met else 'MISS'}  {g.name:38} {g.value:8.3f}  (goal {g.target})" for g in goal_list
    )


def _ratio(a: float, b: float) -> float:
    if b == 0:
        return 0.0 if a == 0 else math.inf
    return a / b


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def scenario_json(result: ScenarioResult, *, settings: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "trace": result.trace,
        "fleet": result.fleet,
        "load_model": result.load_model,
        "seed": result.seed,
        "offered_load": result.offered_load,
        "tasks": result.tasks,
        "settings": settings or {},
        "policies": [{k: json_value(v) for k, v in m.to_json().items()} for m in result.metrics],
        "goals": [g.to_json() for g in goals(result.metrics)],
        **(_failure_json(result) if result.failures is not None else {}),
    }


def _failure_json(result: ScenarioResult) -> dict[str, Any]:
    assert result.failures is not None
    misrated = result.failures.misrated
    shares = {}
    if misrated is not None:
        for outcome in result.outcomes:
            before, after = misrated_failure_shares(outcome, misrated)
            shares[outcome.policy] = {"share_of_failures_before": json_value(before), "after": json_value(after)}
    return {
        "failure_model": {"misrated": misrated, "window": MISRATED_WINDOW, "misrated_failure_shares": shares},
        "outcome_goals": [g.to_json() for g in outcome_goals(result.metrics)],
    }


def json_value(value: Any) -> Any:
    return None if isinstance(value, float) and not math.isfinite(value) else value


def write_json(path: Path, doc: dict[str, Any]) -> None:
    prepare_parent(path)
    try:
        path.write_text(json.dumps(doc, indent=2, sort_keys=False) + "\n", encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot write {path}: {exc.strerror or exc}") from exc

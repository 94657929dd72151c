"""The PNG: per scenario, cost against the top-EV decile's p95 wait (left) and all tasks' p95 wait (right).

Router variants of a settings sweep (names starting "router[") are joined by a line, which draws the
cost / waiting trade-off of that setting.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display on servers or in CI

import matplotlib.pyplot as plt
from matplotlib.figure import Figure

from router.errors import ConfigError
from sim.metrics import Metrics
from sim.outputs import prepare_parent
from sim.run import ScenarioResult

IMAGE_FORMATS = ("png", "svg", "pdf")  # what --plot writes; the formats matplotlib draws without extra tools
ALL_TASK_GOAL, TOP_EV_GOAL = 1.5, 0.2  # the Pareto plot's goal corner (sim.report.goals)
PANELS = (("top_decile_wait_p95_s", "top-EV-decile wait p95 (s)"), ("wait_p95_s", "all-task wait p95 (s)"))


def _short(policy: str) -> str:
    if policy.startswith("router[") and "=" in policy:
        return policy[policy.index("=") + 1 : -1]  # a sweep value; the line shows which setting
    return policy


def _x(m: Metrics, key: str) -> float:
    return max(float(getattr(m, key)), 1.0)  # log axis: a zero wait is drawn at 1 s


def plot(results: Sequence[ScenarioResult], path: Path, *, title: str = "") -> None:
    rows = max(1, len(results))
    fig, axes = plt.subplots(rows, 2, figsize=(12, 3.2 * rows), squeeze=False)
    for row, result in zip(axes, results, strict=False):
        for ax, (key, label) in zip(row, PANELS, strict=True):
            sweep = [m for m in result.metrics if m.policy.startswith("router[")]
            if len(sweep) > 1:
                ax.plot([_x(m, key) for m in sweep], [m.total_usd for m in sweep], "-o", color="C3", ms=3, alpha=0.6)
            for j, m in enumerate(result.metrics):
                base = m.policy if not m.policy.startswith("router[") else None
                color = "C3" if base is None else f"C{j % 10}"
                if base is not None:
                    ax.scatter([_x(m, key)], [m.total_usd], color=color, s=36, zorder=3)
                ax.annotate(
                    _short(m.policy),
                    (_x(m, key), m.total_usd),
                    textcoords="offset points",
                    xytext=(4, 3),
                    fontsize=7,
                    color=color,
                )
            ax.set_xscale("log")
            ax.set_xlabel(label, fontsize=8)
            ax.set_ylabel("total cost (USD)", fontsize=8)
            ax.set_title(
                f"{result.trace} on {result.fleet} ({result.load_model}, load {result.offered_load:g})", fontsize=9
            )
            ax.grid(True, which="both", alpha=0.3)
            ax.tick_params(labelsize=7)
    fig.suptitle(title or "model-router what-if: cost against waiting per policy (line: router settings sweep)")
    _save(fig, path)


def _save(fig: Figure, path: Path) -> None:
    fig.tight_layout()
    try:
        prepare_parent(path)
        fig.savefig(path, dpi=110, format=image_format(path))
    except OSError as exc:
        raise ConfigError(f"cannot write {path}: {exc.strerror or exc}") from exc
    finally:
        plt.close(fig)


def image_format(path: Path) -> str:
    """The format the extension names; no extension means PNG, written at exactly the path given."""
    extension = path.suffix.lower().lstrip(".")
    if not extension:
        return "png"
    if extension not in IMAGE_FORMATS:
        raise ConfigError(f"--plot {path}: unknown image format {path.suffix!r}; use {', '.join(IMAGE_FORMATS)}")
    return extension


POLICY_COLOURS = {"fifo": "C0", "fifo-capable": "C1", "cheapest": "C2", "router": "C3", "premium": "C4"}


def pareto(points: dict[str, tuple[float, float]], path: Path, *, title: str, bound: float = math.nan) -> None:
    """Top-EV p95 against all-task p95, both as ratios to fifo-capable, one point per policy.

    Sweep variants ("router[key=value]") are joined by a line in the order given, so the line is what
    the swept setting trades; the shaded corner is where both goals are met; a dashed line marks the
    top-EV bound (the oracle's ratio), where given.
    """
    fig, ax = plt.subplots(figsize=(7, 5))
    finite = {p: xy for p, xy in points.items() if all(math.isfinite(v) and v > 0 for v in xy)}
    finite = {"fifo-capable": (1.0, 1.0), **finite}  # the baseline, by definition
    swept = [p for p in finite if p.startswith("router[")]
    if len(swept) > 1:
        key = swept[0][len("router[") : swept[0].index("=")] if "=" in swept[0] else "setting"
        xs, ys = [finite[p][0] for p in swept], [finite[p][1] for p in swept]
        ax.plot(xs, ys, "-", color="C3", alpha=0.6, zorder=2, label=f"router, {key} swept (values labelled)")
    for j, (policy, (x, y)) in enumerate(finite.items()):
        colour = "C3" if policy.startswith("router[") else POLICY_COLOURS.get(policy, f"C{5 + j % 5}")
        ax.scatter([x], [y], color=colour, s=14 if policy.startswith("router[") else 40, zorder=3)
        ax.annotate(_short(policy), (x, y), textcoords="offset points", xytext=(4, 3), fontsize=7, color=colour)
    ax.fill_between([1e-3, ALL_TASK_GOAL], 1e-3, TOP_EV_GOAL, color="C2", alpha=0.12, label="both goals met")
    ys = [y for _, y in finite.values()] + [TOP_EV_GOAL]
    if math.isfinite(bound) and bound > 0:
        ax.axhline(bound, color="0.4", linestyle="--", linewidth=1, label="top-EV bound (oracle), median")
        ys.append(bound)
    ax.set_xscale("log")
    ax.set_yscale("log")
    xs = [x for x, _ in finite.values()] + [ALL_TASK_GOAL]
    ax.set_xlim(min(xs) / 1.5, max(xs) * 1.5)
    ax.set_ylim(min(ys) / 1.5, max(ys) * 1.5)
    ax.set_xlabel("all-task wait p95 / fifo-capable's (median over scenarios)", fontsize=8)
    ax.set_ylabel("top-EV-decile wait p95 / fifo-capable's (median over scenarios)", fontsize=8)
    ax.set_title(title, fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    ax.tick_params(labelsize=7)
    _save(fig, path)

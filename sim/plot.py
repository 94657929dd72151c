"""The PNG: cost against the top-EV decile's p95 wait per policy, and against all tasks' p95 wait beside it.

Router variants of a settings sweep (names starting "router[") are joined by a line per scenario,
which draws the cost / waiting trade-off of that setting.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display on servers or in CI

import matplotlib.pyplot as plt

from sim.run import ScenarioResult

MARKERS = "osD^v<>p*h"


def plot(results: Sequence[ScenarioResult], path: Path, *, title: str = "") -> None:
    fig, axes = plt.subplots(1, 2, figsize=(13, 5.5), sharey=False)
    panels = (("top_decile_wait_p95_s", "top-EV-decile wait p95 (s)"), ("wait_p95_s", "all-task wait p95 (s)"))
    for ax, (key, label) in zip(axes, panels, strict=True):
        for i, result in enumerate(results):
            scenario = f"{result.trace} {result.fleet}"
            color = f"C{i % 10}"
            sweep = [m for m in result.metrics if m.policy.startswith("router[")]
            if len(sweep) > 1:
                ax.plot(
                    [max(getattr(m, key), 1.0) for m in sweep],
                    [m.total_usd for m in sweep],
                    "-",
                    color=color,
                    alpha=0.5,
                )
            for j, m in enumerate(result.metrics):
                x = max(getattr(m, key), 1.0)  # log axis: a zero wait is drawn at 1 s
                ax.scatter(
                    [x],
                    [m.total_usd],
                    color=color,
                    marker=MARKERS[j % len(MARKERS)],
                    s=40,
                    label=f"{scenario}: {m.policy}" if ax is axes[0] else None,
                )
                ax.annotate(
                    m.policy, (x, m.total_usd), textcoords="offset points", xytext=(4, 3), fontsize=6, color=color
                )
        ax.set_xscale("log")
        ax.set_xlabel(label)
        ax.set_ylabel("total cost (USD)")
        ax.grid(True, which="both", alpha=0.3)
    fig.legend(loc="lower center", ncol=3, fontsize=6, frameon=False)
    fig.suptitle(title or "model-router what-if: cost against waiting, per policy")
    fig.tight_layout(rect=(0, 0.16, 1, 0.95))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=130)
    plt.close(fig)

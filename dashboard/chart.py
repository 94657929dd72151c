"""A horizontal bar chart laid out in Python and drawn by the template as inline SVG: no script,
no library, and the labels go through the template's escaping like any other text."""

from __future__ import annotations

from dataclasses import dataclass

LABEL_W = 90  # px for the model name
BAR_W = 260  # px for the longest bar
VALUE_W = 90  # px for the figure after the bar
ROW_H = 22


@dataclass(frozen=True, slots=True, kw_only=True)
class Bar:
    label: str
    value: float
    text: str
    y: int
    width: int
    tier: int | None


@dataclass(frozen=True, slots=True, kw_only=True)
class BarChart:
    bars: list[Bar]
    width: int
    height: int
    label_w: int = LABEL_W
    row_h: int = ROW_H


def bar_chart(values: list[tuple[str, float, int | None]]) -> BarChart:
    """Bars for (label, USD, tier), largest first; zero bars are left out."""
    shown = sorted((v for v in values if v[1] > 0), key=lambda v: (-v[1], v[0]))
    top = max((v for _, v, _ in shown), default=0.0)
    bars = [
        Bar(
            label=label,
            value=value,
            text=f"${value:,.2f}",
            y=i * ROW_H,
            width=max(1, round(BAR_W * value / top)) if top else 0,
            tier=tier,
        )
        for i, (label, value, tier) in enumerate(shown)
    ]
    return BarChart(bars=bars, width=LABEL_W + BAR_W + VALUE_W, height=max(ROW_H, len(bars) * ROW_H))

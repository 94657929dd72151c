"""Template filters: money, shares, times and ages, the way the page shows them."""

from __future__ import annotations

import math
from datetime import UTC, datetime

# An em dash for "no value": it reads as absent where a 0 would read as a measurement.
NONE = "\u2014"


def usd(value: float | None) -> str:
    if value is None:
        return NONE
    if value != 0 and abs(value) < 0.01:
        return f"${value:,.4f}"
    return f"${value:,.2f}"


def usd_each(value: float | None) -> str:
    """A per-decision price: cents matter here, so four decimals below a dollar."""
    if value is None:
        return NONE
    return f"${value:,.4f}" if abs(value) < 1 else f"${value:,.2f}"


def pct(value: float | None) -> str:
    return NONE if value is None else f"{value * 100:.1f}%"


def utc(ms: int | None) -> str:
    if ms is None:
        return NONE
    try:
        return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    except (OverflowError, OSError, ValueError):  # a time no date can hold (a snapshot edited by hand)
        return NONE


def duration(seconds: float | None) -> str:
    if seconds is None:
        return NONE
    s = int(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m {s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h {s % 3600 // 60:02d}m"
    return f"{s // 86400}d {s % 86400 // 3600:02d}h"


def ago(ms: int | None, now_ms: int) -> str:
    try:
        return NONE if ms is None else duration(max(0, now_ms - ms) / 1000)
    except OverflowError:  # hundreds of digits, from a snapshot edited by hand
        return NONE


def eta(seconds: float | None) -> str:
    """An estimate, rounded as one: "~40 s", "~4 min", "~2 h", "~3 d"; "unknown" before the router
    has measured how fast slots free up (and for a number no estimate is: NaN, infinity)."""
    if seconds is None or not math.isfinite(seconds):
        return "unknown"
    s = max(0.0, seconds)
    if s < 60:
        return f"~{max(1, round(s))} s"
    if s < 3600:
        return f"~{round(s / 60)} min"
    if s < 48 * 3600:
        return f"~{round(s / 3600)} h"
    return f"~{round(s / 86400):,} d"

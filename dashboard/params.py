"""Query parameters, checked before they reach SQL: anything unexpected is a 400 with a message."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

# The page offers these windows; the JSON API takes any whole number of hours up to MAX_HOURS.
WINDOWS: dict[str, int] = {"1h": 1, "24h": 24, "7d": 24 * 7}
DEFAULT_WINDOW = "24h"
# Thirty days: the store's default retention, so a longer window could only show what is gone.
MAX_HOURS = 24 * 30
# Longer than any plausible number; keeps a hostile value from reaching int() at all.
_MAX_DIGITS = 6


class BadParameter(ValueError):
    """A query parameter the dashboard refuses; the message is shown to the caller."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Window:
    hours: int
    label: str  # "24h", or "36h" for a window asked for in hours


def parse_window(query: Mapping[str, str]) -> Window:
    """`window=1h|24h|7d` or `hours=N` (1..MAX_HOURS); neither means the last 24 hours."""
    window = _single(query, "window")
    hours = _single(query, "hours")
    if window is not None and hours is not None:
        raise BadParameter("give either window or hours, not both")
    if window is not None:
        if window not in WINDOWS:
            raise BadParameter(f"window must be one of {', '.join(WINDOWS)}")
        return Window(hours=WINDOWS[window], label=window)
    if hours is None:
        return Window(hours=WINDOWS[DEFAULT_WINDOW], label=DEFAULT_WINDOW)
    return Window(hours=parse_hours(hours), label=_label(parse_hours(hours)))


def _single(query: Mapping[str, str], name: str) -> str | None:
    """The parameter's value; given more than once (Starlette's QueryParams keeps them all) it is
    refused, since which one was meant is a guess."""
    getlist = getattr(query, "getlist", None)
    if getlist is not None and len(getlist(name)) > 1:
        raise BadParameter(f"{name} is given more than once")
    return query.get(name)


def parse_hours(raw: str) -> int:
    text = raw.strip()
    if not text.isascii() or not text.isdigit() or len(text) > _MAX_DIGITS:
        raise BadParameter(f"hours must be a whole number from 1 to {MAX_HOURS}")
    value = int(text)
    if not 1 <= value <= MAX_HOURS:
        raise BadParameter(f"hours must be a whole number from 1 to {MAX_HOURS}")
    return value


def _label(hours: int) -> str:
    for label, h in WINDOWS.items():
        if h == hours:
            return label
    return f"{hours}h"

"""Argument types shared by the commands. A bad value is a usage error (one line, exit 2) at
parse time, before anything is connected to or queued; never a traceback later on.

Every number has an upper bound as well: an unbounded one overflows somewhere downstream (a
Redis COUNT, a SQL LIMIT, a timedelta, a sleep)."""

from __future__ import annotations

import argparse
import math
import re
from collections.abc import Callable

# Redis stream entry ids: milliseconds, optionally `-sequence`, each an unsigned 64-bit number.
_STREAM_ID = re.compile(r"^(\d+)(?:-(\d+))?$")
_UINT64 = 2**64
# The most entries or rows one listing command prints: far more than anyone reads, far less than
# the 64-bit COUNT/LIMIT that Redis and SQL refuse beyond.
MAX_LISTED = 10_000_000


def int_between(low: int, high: int) -> Callable[[str], int]:
    """An integer from `low` to `high` inclusive."""

    def parse(value: str) -> int:
        try:
            number = int(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{value!r} is not an integer") from None
        if number < low:
            raise argparse.ArgumentTypeError(f"{value!r} {_at_least(low)}")
        if number > high:
            raise argparse.ArgumentTypeError(f"{value!r} must be at most {high}")
        return number

    return parse


def _at_least(low: int) -> str:
    return {0: "must not be negative", 1: "must be positive"}.get(low, f"must be at least {low}")


def positive_number_up_to(high: float) -> Callable[[str], float]:
    """A finite number above 0 and at most `high` (so `nan`, `inf` and `-5` are refused)."""

    def parse(value: str) -> float:
        try:
            number = float(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{value!r} is not a number") from None
        if not math.isfinite(number) or number <= 0:
            raise argparse.ArgumentTypeError(f"{value!r} must be positive and finite")
        if number > high:
            raise argparse.ArgumentTypeError(f"{value!r} must be at most {high:g}")
        return number

    return parse


positive_count = int_between(1, MAX_LISTED)
non_negative_count = int_between(0, MAX_LISTED)
port = int_between(0, 65535)


def stream_id(value: str) -> str:
    """A Redis stream entry id as XADD makes them: `1732590000000-0` (or just the milliseconds)."""
    match = _STREAM_ID.match(value)
    if match is None or any(int(part) >= _UINT64 for part in match.groups() if part is not None):
        raise argparse.ArgumentTypeError(f"{value!r} is not a stream entry id such as 1732590000000-0")
    return value

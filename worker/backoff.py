"""Capped, jittered exponential backoff as a pure function (the caller supplies the randomness)."""

from __future__ import annotations

import random


def compute_backoff(
    attempt: int, *, base_s: float = 0.1, cap_s: float = 10.0, rand: random.Random | None = None
) -> float:
    """Seconds to wait before retry number `attempt` (1-based): full jitter, anywhere from 0 to
    min(cap, base * 2^(attempt - 1)). Drawing from the whole range, rather than its upper half,
    spreads the processes an outage stopped together the most widely over their retries, so the
    server they reconnect to when it comes back gets the fewest at once (AWS's "Exponential
    Backoff And Jitter" compares the schemes); the mean wait still doubles with every attempt."""
    ceiling = min(cap_s, base_s * (2 ** max(0, attempt - 1)))
    return (rand or random).uniform(0.0, ceiling)

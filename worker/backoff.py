"""Capped, jittered exponential backoff as a pure function (the caller supplies the randomness)."""

from __future__ import annotations

import random


def compute_backoff(
    attempt: int, *, base_s: float = 0.1, cap_s: float = 10.0, rand: random.Random | None = None
) -> float:
    """Seconds to wait before retry number `attempt` (1-based): full jitter over min(cap, base * 2^n)."""
    ceiling = min(cap_s, base_s * (2 ** max(0, attempt - 1)))
    return (rand or random).uniform(ceiling / 2, ceiling)

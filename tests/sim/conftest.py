"""Small fixed fleets and tasks for the simulator's tests."""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from router.catalog import load_catalog
from sim.fleet import Fleet, parse_fleet
from sim.workload import SimTask


def make_fleet(pools: list[tuple[str, int]], *, speed: Mapping[str, float] | None = None) -> Fleet:
    doc = {"pool": [{"model": m, "account": "a", "slots": n, "speed": (speed or {}).get(m, 1.0)} for m, n in pools]}
    return parse_fleet(doc, load_catalog(), name="test")


def make_task(
    n: int,
    *,
    at_s: float,
    run_s: float,
    requires: Mapping[str, int] | None = None,
    priority: int = 50,
    ev: float | None = None,
    tokens: tuple[int, int] = (1_000_000, 0),
) -> SimTask:
    return SimTask(
        task_id=f"t{n}",
        arrival_ms=round(at_s * 1000),
        priority=priority,
        quest_priority=None,
        ev=priority / 100 if ev is None else ev,
        requires=dict(requires or {}),
        layer="unknown",
        difficulty="test",
        base_run_s=run_s,
        input_tokens=tokens[0],
        output_tokens=tokens[1],
    )


@pytest.fixture
def small_fleet() -> Fleet:
    return make_fleet([("opus", 1), ("haiku", 1)])

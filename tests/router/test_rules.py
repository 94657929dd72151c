"""Each policy rule has one home, router/policy.py, and every caller asks it.

The premium block and the override used to be re-stated inside the waiting index; two copies
answered differently when P50 was NaN (`ev < nan` and `ev >= nan` are both false). Now the index
calls the same functions as route(), so for any numbers at all the two cannot disagree; and the EV
window's percentiles are finite for any finite EVs, so NaN never reaches the rules in the first place.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from router import policy
from router.catalog import load_catalog
from router.engine import Router, RouterConfig
from router.ev import EVWindow
from router.values import Outcome, SlotFree, Task, TaskPending

ROUTER_DIR = Path(policy.__file__).parent
ANY_FLOAT = st.floats(allow_nan=True, allow_infinity=True)
EXTREME = 1.7e308


def _task(priority: int, quest: int | None = None) -> Task:
    return Task(task_id="t", priority=priority, requires={}, quest_priority=quest)


@given(priority=st.integers(-10, 110), ev=ANY_FLOAT, p50=st.none() | ANY_FLOAT, min_tier=st.sampled_from([1, 2]))
def test_the_premium_block_is_the_complement_of_premium_allowed_for_any_numbers(
    priority: int, ev: float, p50: float | None, min_tier: int
) -> None:
    blocked = policy.is_premium_blocked(_task(priority), ev=ev, p50=p50, min_tier=min_tier)
    assert blocked is not policy.premium_allowed(priority, ev, p50)


@given(ev=ANY_FLOAT, p50=st.none() | ANY_FLOAT, priority=st.integers(-10, 110))
def test_premium_is_never_blocked_when_only_premium_models_are_rateable(
    ev: float, p50: float | None, priority: int
) -> None:
    assert not policy.is_premium_blocked(_task(priority), ev=ev, p50=p50, min_tier=3)


@given(ev=ANY_FLOAT, p90=st.none() | ANY_FLOAT, quest=st.none() | st.integers(0, 100))
def test_override_is_the_quest_rule_or_the_ev_rule(ev: float, p90: float | None, quest: int | None) -> None:
    expected = policy.is_quest_override(quest) or policy.is_ev_override(ev, p90)
    assert policy.is_override(_task(50, quest), ev=ev, p90=p90) is expected


def test_the_rules_thresholds_are_the_documented_ones() -> None:
    assert policy.premium_allowed(89, 0.4, 0.5) is False
    assert policy.premium_allowed(90, 0.4, 0.5) is True
    assert policy.premium_allowed(10, 0.5, 0.5) is True
    assert policy.is_quest_override(94) is False and policy.is_quest_override(95) is True
    assert policy.is_ev_override(0.9, 0.9) is False and policy.is_ev_override(0.91, 0.9) is True


@given(st.lists(st.sampled_from([-EXTREME, EXTREME, 0.0, 1.0, -1.0]) | st.floats(-EXTREME, EXTREME), min_size=1))
def test_the_ev_window_percentiles_are_finite_for_any_finite_evs(values: list[float]) -> None:
    window = EVWindow(size=50, values=values)
    assert window.p50 is not None and math.isfinite(window.p50)
    assert window.p90 is not None and math.isfinite(window.p90)


def test_a_premium_slot_goes_to_a_waiting_task_exactly_when_route_allows_it_at_extreme_evs() -> None:
    """The scenario where the two copies once disagreed: EVs at the float limits, one premium slot."""
    for ageing in (0.0, 1.0):
        router = Router(
            load_catalog(), config=RouterConfig(ageing_points_per_service_time=ageing, ev_rank_points=ageing)
        )
        router.begin_batch("1-0")
        for i, ev in enumerate((-EXTREME, -EXTREME, EXTREME)):
            task = Task(task_id=f"x{i}", priority=50, requires={"no-such-cap": 1}, ev=ev)
            router.apply(TaskPending(task=task), event_id=f"1-{i}", now_ms=1)
        router.apply(
            TaskPending(task=Task(task_id="low", priority=50, requires={}, ev=-EXTREME)), event_id="1-4", now_ms=1
        )
        router.apply(SlotFree(slot_id="o1", model="opus", account="default"), event_id="1-5", now_ms=1)
        decisions = [e for e in router.match(now_ms=1) if hasattr(e, "outcome")]
        p50 = router.ev_window.p50
        allowed = policy.premium_allowed(50, -EXTREME, p50)
        assigned = [d for d in decisions if d.outcome is Outcome.ASSIGNED]
        assert bool(assigned) is allowed
        if not allowed:
            assert router.ledger.slots["o1"].task_id is None and "low" in router.waiting


def test_no_module_but_policy_states_a_rule_threshold() -> None:
    """grep, as a test: the thresholds and the EV comparisons with P50/P90 appear in policy.py only."""
    restated = re.compile(r"PREMIUM_BLOCK_PRIORITY|OVERRIDE_QUEST_PRIORITY|>=\s*(90|95)\b|[<>]=?\s*-?\w*p(50|90)\b")
    offenders = [
        f"{path.name}:{n}: {line.strip()}"
        for path in sorted(ROUTER_DIR.glob("*.py"))
        if path.name != "policy.py"
        for n, line in enumerate(path.read_text().splitlines(), start=1)
        if restated.search(line) and not line.lstrip().startswith("#")
    ]
    assert offenders == []

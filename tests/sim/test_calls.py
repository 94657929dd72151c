"""The `calls` load model: seeded, independent of fleet and policy, run time from tokens and speed."""

from __future__ import annotations

import pytest

from router.errors import ConfigError
from sim.calls import CALL_KINDS, OVERHEAD_S, REFERENCE_TIER, TOKENS_PER_S_BY_TIER, CallMapping
from sim.des import simulate
from sim.fleet import load_fleet
from sim.loads import load_model
from sim.metrics import percentile
from sim.policies import make_policy
from sim.run import scenario_tasks
from sim.traces import Arrival, load_trace
from tests.sim.conftest import make_fleet


def test_same_seed_same_tasks_other_seed_other_tasks() -> None:
    arrivals = load_trace("mooncake", limit=200)
    first = CallMapping(seed=3).tasks(arrivals, slot_count=16)
    assert first == CallMapping(seed=3).tasks(arrivals, slot_count=16)
    assert [t.ev for t in first] != [t.ev for t in CallMapping(seed=4).tasks(arrivals, slot_count=16)]


def test_tasks_do_not_depend_on_the_fleet_or_policy_beyond_the_time_scale() -> None:
    # Two fleets of different models and sizes: the same drawn fields; only arrival times scale with slots.
    arrivals = load_trace("azure-conv", limit=300)
    on_small = CallMapping().tasks(arrivals, slot_count=12)
    on_large = CallMapping().tasks(arrivals, slot_count=16)
    drawn = [(t.priority, t.quest_priority, t.ev, t.difficulty, t.run_s_by_tier, t.output_tokens) for t in on_small]
    assert drawn == [
        (t.priority, t.quest_priority, t.ev, t.difficulty, t.run_s_by_tier, t.output_tokens) for t in on_large
    ]
    ratio = on_small[-1].arrival_ms / on_large[-1].arrival_ms
    assert ratio == pytest.approx(16 / 12, rel=1e-3)
    # running a policy never changes the tasks it is given
    fleet = load_fleet("4-4-4")
    before = list(on_small)
    simulate(fleet, on_small, make_policy("router", fleet.catalog))
    assert on_small == before


def test_one_row_draws_the_same_whatever_the_rows_after_it() -> None:
    # the same number of draws per row: a prefix of the trace gives a prefix of the tasks' drawn fields
    arrivals = load_trace("mooncake", limit=100)
    short = CallMapping().tasks(arrivals[:40], slot_count=16)
    full = CallMapping().tasks(arrivals, slot_count=16)
    assert [(t.ev, t.difficulty, t.output_tokens) for t in short] == [
        (t.ev, t.difficulty, t.output_tokens) for t in full[:40]
    ]


def test_run_time_is_overhead_plus_output_tokens_over_the_tier_speed() -> None:
    (task,) = CallMapping().tasks([Arrival(at_s=0.0, input_tokens=1000, output_tokens=90)], slot_count=1)
    calls = task.output_tokens // 90
    assert 3 <= calls <= 12 and task.input_tokens == 1000 * calls
    for tier, speed in TOKENS_PER_S_BY_TIER.items():
        assert task.run_s(tier) == pytest.approx(OVERHEAD_S + 90 * calls / speed)
    assert task.base_run_s == task.run_s(REFERENCE_TIER)
    assert task.run_s(1) < task.run_s(2) < task.run_s(3)  # premium models decode slowest


def test_the_simulated_run_uses_the_slot_tier_and_pool_speed() -> None:
    # 450 output tokens per call: on haiku (120 tok/s) x speed 2.0 = 2 x (30 + 450 x calls / 120) s
    fleet = make_fleet([("haiku", 1)], speed={"haiku": 2.0})
    (task,) = CallMapping().tasks([Arrival(at_s=0.0, input_tokens=10, output_tokens=450)], slot_count=1)
    calls = task.output_tokens // 450
    outcome = simulate(fleet, [task], make_policy("fifo", fleet.catalog))
    assert outcome.records[0].finished_ms == round(2.0 * (30 + 450 * calls / 120) * 1000)


def test_the_task_mix_follows_the_documented_shares() -> None:
    arrivals = [Arrival(at_s=float(i), input_tokens=100, output_tokens=50) for i in range(20_000)]
    tasks = CallMapping().tasks(arrivals, slot_count=16)
    for name, kind in CALL_KINDS.items():
        mine = [t for t in tasks if t.difficulty == name]
        assert len(mine) / len(tasks) == pytest.approx(kind.share, abs=0.01), name
        assert all(t.requires == kind.requires and t.layer == kind.layer for t in mine)
    high = sum(1 for t in tasks if t.priority >= 90) / len(tasks)
    assert high == pytest.approx(0.07, abs=0.01)
    mean_calls = sum(t.output_tokens / 50 for t in tasks) / len(tasks)
    assert mean_calls == pytest.approx(7.5, abs=0.1)
    # EV follows the kind: the median plan is worth more than the median lookup
    medians = [percentile([t.ev for t in tasks if t.difficulty == name], 0.5) for name in CALL_KINDS]
    assert medians == sorted(medians)


def test_arrivals_are_rescaled_to_the_offered_load_at_the_reference_tier() -> None:
    arrivals = [Arrival(at_s=float(i), input_tokens=10, output_tokens=100) for i in range(201)]
    tasks = CallMapping(offered_load=0.9).tasks(arrivals, slot_count=8)
    mean_run_s = sum(t.run_s(REFERENCE_TIER) for t in tasks) / len(tasks)
    rate = (len(tasks) - 1) / ((tasks[-1].arrival_ms - tasks[0].arrival_ms) / 1000)
    assert rate * mean_run_s / 8 == pytest.approx(0.9, rel=1e-3)


def test_load_models_by_name() -> None:
    fleet = load_fleet("2-4-10")
    calls = scenario_tasks("azure-code", fleet, mapping=load_model("calls", seed=7, offered_load=0.5), limit=50)
    sessions = scenario_tasks("azure-code", fleet, mapping=load_model("sessions", seed=7, offered_load=0.5), limit=50)
    assert {t.difficulty for t in calls} <= set(CALL_KINDS)
    assert max(t.base_run_s for t in calls) < min(t.base_run_s for t in sessions)  # seconds, not sessions of minutes
    with pytest.raises(ConfigError, match="unknown load model 'batch'"):
        load_model("batch", seed=7, offered_load=0.5)


@pytest.mark.parametrize("name", ["2-4-10-two-accounts", "4-4-4-two-accounts"])
def test_two_account_fleets_have_the_reference_slots(name: str) -> None:
    split, whole = load_fleet(name), load_fleet(name.removesuffix("-two-accounts"))
    assert {p.account for p in split.pools} == {"acct-a", "acct-b"}
    for model in ("opus", "sonnet", "haiku"):
        assert sum(p.slots for p in split.pools if p.model == model) == sum(
            p.slots for p in whole.pools if p.model == model
        )

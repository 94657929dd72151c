"""The failure model, escalation and retry in every policy, and the outcome figures, by hand."""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from router.catalog import load_catalog
from router.values import Failure
from sim.des import simulate
from sim.failures import FailureModel, hardness, margin, misrated_truth, success_probability
from sim.metrics import measure, misrated_failure_shares
from sim.policies import make_policy
from tests.sim.conftest import make_fleet, make_task

# haiku: $1 per million input tokens; sonnet: $3; opus: $5. Every task below uses 1M input tokens.


class Scripted:
    """A failure model whose outcomes are given: (task id, attempt) -> failure (absent: success)."""

    def __init__(self, script: Mapping[tuple[str, int], Failure]) -> None:
        self.script = dict(script)
        self.asked: list[tuple[str, int, str]] = []

    def draw(self, *, task_id: str, attempt: int, model: str, requires: Mapping[str, int]) -> Failure | None:
        self.asked.append((task_id, attempt, model))
        return self.script.get((task_id, attempt))


def test_success_probability_by_hand() -> None:
    assert hardness({}) == 0 and hardness({"coding": 5}) == 1 and hardness({"coding": 7, "reasoning": 6}) == 2
    assert hardness({"coding": 9, "reasoning": 9}) == 3
    assert margin({"coding": 8, "reasoning": 7}, {"coding": 7, "reasoning": 6}) == 1
    assert margin({"coding": 3}, {"coding": 5, "reasoning": 1}) == -2  # reasoning unrated: 0 - 1 = -1, coding -2
    # no requirement: margin 3, hardness 0: 0.97 + 0.03
    assert success_probability({"coding": 5}, {}) == pytest.approx(1.0)
    # coding 8 for coding 5: margin 3, hardness 1: 0.97 - 0.03 + 0.03
    assert success_probability({"coding": 8}, {"coding": 5}) == pytest.approx(0.97)
    # exactly rated for a hardness-3 task: 0.97 - 0.09
    assert success_probability({"coding": 9, "reasoning": 9}, {"coding": 9, "reasoning": 9}) == pytest.approx(0.88)
    # two points short on a hardness-1 task: 0.94 / 4
    assert success_probability({"coding": 3}, {"coding": 5}) == pytest.approx(0.235)


def test_the_same_attempt_has_the_same_luck_whatever_else_differs() -> None:
    catalog = load_catalog()
    a, b = FailureModel(truth=catalog, seed=7), FailureModel(truth=catalog, seed=7)
    draws = [a.draw(task_id=f"t{i}", attempt=1, model="haiku", requires={"coding": 5}) for i in range(400)]
    assert draws == [b.draw(task_id=f"t{i}", attempt=1, model="haiku", requires={"coding": 5}) for i in range(400)]
    other_seed = FailureModel(truth=catalog, seed=8)
    assert draws != [
        other_seed.draw(task_id=f"t{i}", attempt=1, model="haiku", requires={"coding": 5}) for i in range(400)
    ]
    # haiku (coding 5) on coding 5: 0.94 after 2% transient: about 92% succeed, some of each failure kind
    assert 0.85 < draws.count(None) / 400 < 0.97
    assert Failure.TRANSIENT in draws and Failure.CAPABILITY in draws


def test_policies_see_the_same_luck_on_the_same_first_attempt() -> None:
    fleet = make_fleet([("sonnet", 2), ("haiku", 2)])
    tasks = [make_task(i, at_s=i * 10, run_s=30, requires={"coding": 5}) for i in range(60)]
    failures = FailureModel(truth=fleet.catalog, seed=11)
    firsts = {}
    for name in ("fifo-capable", "cheapest", "router"):
        outcome = simulate(fleet, tasks, make_policy(name, fleet.catalog), failures)
        firsts[name] = {(r.task.task_id, r.attempts[0].model): r.attempts[0].failure for r in outcome.records}
    for key in firsts["fifo-capable"].keys() & firsts["router"].keys():
        assert firsts["fifo-capable"][key] == firsts["router"][key]
    assert firsts["fifo-capable"].keys() & firsts["router"].keys()  # the comparison compared something


@pytest.mark.parametrize("policy", ["cheapest", "fifo-capable", "router"])
def test_a_capability_failure_on_tier_1_escalates_to_tier_2(policy: str) -> None:
    fleet = make_fleet([("sonnet", 1), ("haiku", 1)])
    # t0 takes haiku first: the cheapest capable model (cheapest, router); fifo-capable takes the
    # first free slot in id order, sonnet's, so t1 holds sonnet then (until after t0's escalation)
    if policy == "fifo-capable":
        tasks = [make_task(1, at_s=0, run_s=150), make_task(0, at_s=1, run_s=100)]
    else:
        tasks = [make_task(0, at_s=0, run_s=100), make_task(1, at_s=200, run_s=5)]
    script = Scripted({("t0", 1): Failure.CAPABILITY})
    outcome = simulate(fleet, tasks, make_policy(policy, fleet.catalog), script)
    t0 = next(r for r in outcome.records if r.task.task_id == "t0")
    assert [(a.model, a.failure) for a in t0.attempts] == [("haiku", Failure.CAPABILITY), ("sonnet", None)]
    assert t0.succeeded
    m = measure(outcome, fleet.catalog)
    assert m.escalations_per_task == 0.5 and m.retries_per_task == 0.0  # one escalation over two tasks
    assert m.wasted_usd == 1.0  # the failed haiku attempt
    assert m.succeeded == 2 and m.success_rate == 1.0
    assert m.usd_per_success == pytest.approx(m.total_usd / 2)


@pytest.mark.parametrize("policy", ["cheapest", "fifo-capable", "router", "premium", "fifo"])
def test_transient_failures_retry_twice_then_the_task_is_given_up(policy: str) -> None:
    fleet = make_fleet([("opus", 1)])
    script = Scripted({("t0", n): Failure.TRANSIENT for n in range(1, 10)})
    outcome = simulate(fleet, [make_task(0, at_s=0, run_s=10)], make_policy(policy, fleet.catalog), script)
    (t0,) = outcome.records
    assert [a.failure for a in t0.attempts] == [Failure.TRANSIENT] * 3  # the first try and two retries
    m = measure(outcome, fleet.catalog)
    assert m.success_rate == 0.0 and m.retries_per_task == 2.0 and m.wasted_usd == 15.0
    assert m.usd_per_success != m.usd_per_success  # NaN: nothing succeeded


@pytest.mark.parametrize("policy", ["premium", "router", "fifo"])
def test_a_capability_failure_with_no_higher_tier_gives_the_task_up(policy: str) -> None:
    fleet = make_fleet([("opus", 1), ("haiku", 1)])
    task = make_task(0, at_s=0, run_s=10, requires={"coding": 9, "reasoning": 9})  # opus only
    script = Scripted({("t0", 1): Failure.CAPABILITY})
    outcome = simulate(fleet, [task], make_policy(policy, fleet.catalog), script)
    (t0,) = outcome.records
    assert [(a.model, a.failure) for a in t0.attempts] == [("opus", Failure.CAPABILITY)]
    assert not t0.succeeded


def test_the_escalation_cap_gives_up_after_two_escalations() -> None:
    fleet = make_fleet([("opus", 1), ("sonnet", 1), ("haiku", 1)])
    script = Scripted({("t0", n): Failure.CAPABILITY for n in range(1, 10)})
    outcome = simulate(fleet, [make_task(0, at_s=0, run_s=10)], make_policy("cheapest", fleet.catalog), script)
    (t0,) = outcome.records
    assert [a.model for a in t0.attempts] == ["haiku", "sonnet", "opus"]
    assert measure(outcome, fleet.catalog).escalations_per_task == 2.0


def test_the_misrated_model_behaves_two_points_lower_while_the_catalogue_keeps_its_rating() -> None:
    catalog = load_catalog()
    truth = misrated_truth(catalog, "haiku")
    assert truth.models["haiku"].capabilities["coding"] == catalog.models["haiku"].capabilities["coding"] - 2
    assert truth.models["sonnet"] == catalog.models["sonnet"]
    assert catalog.models["haiku"].meets({"coding": 5}) and not truth.models["haiku"].meets({"coding": 5})


def test_misrated_failure_shares_by_hand() -> None:
    fleet = make_fleet([("sonnet", 1), ("haiku", 1)])
    # four tasks, one after another on haiku (cheapest); t0 and t1 fail there, then escalate to sonnet
    tasks = [make_task(i, at_s=i * 100, run_s=10) for i in range(4)]
    script = Scripted({("t0", 1): Failure.CAPABILITY, ("t1", 1): Failure.CAPABILITY, ("t3", 1): Failure.TRANSIENT})
    outcome = simulate(fleet, tasks, make_policy("cheapest", fleet.catalog), script)
    # haiku's outcomes in time order: t0 fail, t1 fail, t2 ok, t3 transient, t3 retried on haiku (ok)
    before, after = misrated_failure_shares(outcome, "haiku", within=2)
    assert (before, after) == (1.0, 1.0)  # every failure was haiku's, before and after its 2nd outcome
    before, after = misrated_failure_shares(outcome, "sonnet", within=1)
    assert before == 0.0  # by sonnet's first outcome (t0's escalation) only haiku had failed

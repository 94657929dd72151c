"""Failed outcomes in the router (PROTOCOL.md v1.1): escalation, retry, their caps, duplicates and
foreign reports, the snapshot across a restart, and the quality gate."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from router.catalog import Catalog, load_catalog
from router.config import RouterConfig
from router.engine import Router
from router.quality import GateMode, GateSettings, QualityGate, wilson
from router.values import Decision, Effect, Outcome, ReasonCode, UsageReported, Verdict
from streams.schema import parse_event

NOW = 1_000_000


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return load_catalog(None)


class Run:
    """A router fed wire documents one batch at a time, as the worker does."""

    def __init__(self, catalog: Catalog, config: RouterConfig | None = None) -> None:
        self.catalog = catalog
        self.router = Router(catalog, config=config)
        self.n = 0
        self.changes: list[Any] = []

    def send(self, doc: dict[str, Any]) -> list[Effect]:
        self.n += 1
        batch = f"{self.n}-0"
        self.router.begin_batch(batch)
        event = parse_event(orjson.dumps(doc), models=self.catalog.models.keys())
        effects = self.router.apply(event, event_id=batch, now_ms=NOW + self.n)
        effects += self.router.match(now_ms=NOW + self.n)
        self.changes.append(self.router.drain_changes())
        return effects

    def free(self, slot_id: str, model: str, **completed: Any) -> list[Effect]:
        doc: dict[str, Any] = {"type": "slot.free", "slot_id": slot_id, "model": model}
        if completed:
            doc["completed"] = completed
        return self.send(doc)

    def task(self, task_id: str = "t1", **fields: Any) -> list[Effect]:
        return self.send({"type": "task.pending", "task_id": task_id, "priority": 50, "requires": {}, **fields})


def decisions(effects: list[Effect]) -> list[Decision]:
    return [e for e in effects if isinstance(e, Decision)]


def usage(effects: list[Effect]) -> list[UsageReported]:
    return [e for e in effects if isinstance(e, UsageReported)]


def fleet(run: Run) -> None:
    for slot_id, model in (("h1", "haiku"), ("s1", "sonnet"), ("o1", "opus")):
        run.free(slot_id, model)


def failed(run: Run, slot_id: str, model: str, failure: str, task_id: str = "t1") -> list[Effect]:
    return run.free(slot_id, model, task_id=task_id, outcome="failed", failure=failure)


def test_capability_failure_escalates_to_the_next_tier_with_the_model_excluded(catalog: Catalog) -> None:
    run = Run(catalog)
    fleet(run)
    (first,) = decisions(run.task())
    assert first.chosen is not None and first.chosen.model == "haiku" and first.attempt == 1
    effects = failed(run, "h1", "haiku", "capability")
    waiting, assigned = decisions(effects)
    assert (waiting.outcome, waiting.reason_code) == (Outcome.AWAIT_SLOT, ReasonCode.ESCALATED)
    assert (waiting.attempt, waiting.previous_decision_id) == (2, first.decision_id)
    assert assigned.chosen is not None and assigned.chosen.model == "sonnet"
    assert (assigned.attempt, assigned.previous_decision_id) == (2, first.decision_id)
    excluded = [a for a in assigned.alternatives if a.model == "haiku"]
    assert excluded[0].verdict is Verdict.INCAPABLE and "failed this task" in (excluded[0].detail or "")
    (report,) = usage(effects)
    assert (report.outcome_effect, report.attempt, report.decision_id) == ("escalated", 1, first.decision_id)


def test_escalations_are_capped_then_the_task_fails(catalog: Catalog) -> None:
    run = Run(catalog, RouterConfig(max_escalations=1))
    fleet(run)
    run.task()
    failed(run, "h1", "haiku", "capability")
    (gave_up,) = decisions(failed(run, "s1", "sonnet", "capability"))
    assert (gave_up.outcome, gave_up.reason_code, gave_up.attempt) == (Outcome.FAILED, ReasonCode.GAVE_UP, 2)
    assert "ROUTER_MAX_ESCALATIONS" in gave_up.reason
    assert not run.router.escalations and "t1" not in run.router.waiting.tasks


def test_escalation_past_the_top_tier_fails_for_want_of_a_higher_tier(catalog: Catalog) -> None:
    run = Run(catalog)
    run.free("o1", "opus")
    run.task(priority=95)
    (gave_up,) = decisions(failed(run, "o1", "opus", "capability"))
    assert gave_up.outcome is Outcome.FAILED and "no model of tier 4 or above" in gave_up.reason


def test_escalated_past_every_non_premium_tier_is_premium_only(catalog: Catalog) -> None:
    """A low-EV task that premium is blocked for may use premium once tiers 1 and 2 failed it."""
    run = Run(catalog)
    for i in range(5):  # unroutable tasks still fill the EV window: EV 0.1 is below its P50
        run.task(f"hi{i}", ev=0.9, requires={"telepathy": 5})
    fleet(run)
    (first,) = decisions(run.task("low", priority=10, ev=0.1))
    assert first.chosen is not None and first.chosen.model == "haiku"
    _, second = decisions(failed(run, "h1", "haiku", "capability", task_id="low"))
    assert second.chosen is not None and second.chosen.model == "sonnet"
    assert {a.model: a.verdict for a in second.alternatives}["opus"] is Verdict.PREMIUM_BLOCKED
    effects = decisions(failed(run, "s1", "sonnet", "capability", task_id="low"))
    assert [d.chosen.model for d in effects if d.chosen is not None] == ["opus"]
    assert [d.min_tier for d in effects] == [3, 3]


def test_transient_failure_retries_at_the_same_rules_then_fails_at_the_cap(catalog: Catalog) -> None:
    run = Run(catalog, RouterConfig(max_retries=1))
    run.free("h1", "haiku")
    run.task()
    waiting, again = decisions(failed(run, "h1", "haiku", "transient"))
    assert (waiting.reason_code, waiting.attempt) == (ReasonCode.RETRIED, 2)
    assert again.chosen is not None and again.chosen.model == "haiku"  # same rules: haiku may retry it
    (gave_up,) = decisions(failed(run, "h1", "haiku", "transient"))
    assert gave_up.outcome is Outcome.FAILED and "ROUTER_MAX_RETRIES" in gave_up.reason


def test_abandoned_fails_at_once(catalog: Catalog) -> None:
    run = Run(catalog)
    fleet(run)
    run.task()
    (gave_up,) = decisions(failed(run, "h1", "haiku", "abandoned"))
    assert (gave_up.outcome, gave_up.attempt) == (Outcome.FAILED, 1)


def test_duplicate_failure_report_changes_nothing(catalog: Catalog) -> None:
    run = Run(catalog)
    fleet(run)
    run.task()
    failed(run, "h1", "haiku", "capability")
    state = run.router.escalations["t1"]
    assert failed(run, "h1", "haiku", "capability") == []
    assert run.router.escalations["t1"] == state and run.router.assigned["t1"]["slot_id"] == "s1"


def test_foreign_outcome_is_recorded_once_and_changes_nothing(catalog: Catalog) -> None:
    run = Run(catalog)
    fleet(run)
    run.task()
    effects = failed(run, "s1", "sonnet", "capability")  # t1 runs on h1, not s1
    assert decisions(effects) == []
    (report,) = usage(effects)
    assert report.outcome_effect == "ignored"
    assert not run.router.escalations and run.router.assigned["t1"]["slot_id"] == "h1"
    never = usage(failed(run, "s1", "sonnet", "capability", task_id="never-assigned"))
    assert [r.outcome_effect for r in never] == ["ignored"]


def test_success_ends_the_chain(catalog: Catalog) -> None:
    run = Run(catalog)
    fleet(run)
    run.task()
    failed(run, "h1", "haiku", "capability")
    (report,) = usage(run.free("s1", "sonnet", task_id="t1", outcome="succeeded"))
    assert (report.outcome_effect, report.attempt) == ("none", 2)
    assert not run.router.escalations
    assert run.changes[-1].escalations == {"t1": None}


def test_restart_mid_escalation_resumes_the_chain(catalog: Catalog) -> None:
    """The escalation state is in the snapshot: a new router rebuilt from it excludes the failed
    model and counts the attempt on, rather than starting over."""
    run = Run(catalog)
    run.free("h1", "haiku")
    run.free("h2", "haiku")
    run.task()
    failed(run, "h1", "haiku", "capability")  # no tier 2 slot: t1 waits
    snap = _merged(run.changes)
    fresh = Router(catalog)
    fresh.restore(
        slots=list(snap["slots"].values()),
        waiting=list(snap["waiting"].values()),
        assigned=snap["assigned"],
        ev_values=snap["ev"],
        utilisation={},
        escalations=snap["escalations"],
    )
    again = Run(catalog)
    again.router, again.n = fresh, run.n
    (decision,) = decisions(again.free("s1", "sonnet"))
    assert decision.chosen is not None and decision.chosen.model == "sonnet" and decision.attempt == 2


def _merged(changes: list[Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"slots": {}, "waiting": {}, "assigned": {}, "escalations": {}, "ev": []}
    for c in changes:
        out["slots"].update(c.slots)
        for name in ("waiting", "assigned", "escalations"):
            for key, value in getattr(c, name).items():
                if value is None:
                    out[name].pop(key, None)
                else:
                    out[name][key] = value
        out["ev"] += c.ev_added
    return out


# -- the quality gate ----------------------------------------------------------------------------


def test_wilson_interval_matches_hand_computed_values() -> None:
    low, high = wilson(8, 10)  # p = 0.8, n = 10, z = 1.96: 0.4902-0.9433
    assert (round(low, 4), round(high, 4)) == (0.4902, 0.9433)
    assert wilson(0, 0) == (0.0, 1.0)


def test_gate_flags_only_when_the_upper_bound_is_below_the_minimum() -> None:
    gate = QualityGate(settings=GateSettings(mode=GateMode.SHADOW, min_outcomes=30))
    for i in range(29):
        gate.record("haiku", "docs", succeeded=i % 4 == 0)
    assert not gate.flagged  # 29 outcomes: too few to judge
    gate.record("haiku", "docs", succeeded=False)
    assert ("haiku", "docs") in gate.flagged
    assert gate.changed_flags and gate.changed_flags[-1][0] is True
    assert gate.kept_out("t", "docs", frozenset({"haiku", "sonnet"})) == {}  # shadow: reports only


def test_gate_on_keeps_a_flagged_model_from_its_layer_but_explores(catalog: Catalog) -> None:
    run = Run(catalog, RouterConfig(quality_gate="on", quality_min_outcomes=30, quality_explore=0.1))
    for _ in range(30):
        run.router.gate.record("haiku", "docs", succeeded=False)
    kept = {f"t{i}": run.router.gate.kept_out(f"t{i}", "docs", frozenset({"haiku", "sonnet"})) for i in range(1000)}
    explored = sum(1 for notes in kept.values() if not notes)
    assert 60 <= explored <= 140  # about a tenth, by the task id's hash
    assert all(notes["haiku"][0] is Verdict.LOW_SUCCESS for notes in kept.values() if notes)
    blocked = next(t for t, notes in kept.items() if notes)
    run.free("h1", "haiku")
    run.free("s1", "sonnet")
    (decision,) = decisions(run.task(blocked, layer="docs"))
    assert decision.chosen is not None and decision.chosen.model == "sonnet"
    verdict = next(a for a in decision.alternatives if a.model == "haiku")
    assert verdict.verdict is Verdict.LOW_SUCCESS and "0/30" in (verdict.detail or "")
    assert run.router.gate.kept_out("x", "other-layer", frozenset({"haiku"})) == {}


def test_gate_never_leaves_a_task_without_a_model(catalog: Catalog) -> None:
    gate = QualityGate(settings=GateSettings(mode=GateMode.ON, min_outcomes=30, explore_share=0.0))
    for _ in range(30):
        gate.record("opus", "design", succeeded=False)
    assert gate.kept_out("t", "design", frozenset({"opus"})) == {}


def test_gate_state_survives_a_restart() -> None:
    gate = QualityGate(settings=GateSettings(mode=GateMode.ON))
    for _ in range(40):
        gate.record("haiku", "docs", succeeded=False)
    fresh = QualityGate(settings=GateSettings(mode=GateMode.ON))
    fresh.restore(gate.drain())
    assert ("haiku", "docs") in fresh.flagged and not fresh.changed_flags


def test_a_foreign_report_does_not_use_up_the_real_one(catalog: Catalog) -> None:
    """h2 reports on t1, which runs on s1: recorded with no decision, and s1's own report, after
    it, still counts (its outcome acts, its usage goes to its decision)."""
    run = Run(catalog)
    fleet(run)
    run.free("h2", "haiku")
    run.task()
    failed(run, "h1", "haiku", "capability")  # t1 now on s1 (attempt 2)
    (foreign,) = usage(failed(run, "h2", "haiku", "capability"))
    assert (foreign.outcome_effect, foreign.decision_id) == ("ignored", None)
    on_sonnet = run.router.assigned["t1"]["decision_id"]
    effects = failed(run, "s1", "sonnet", "capability")
    (report,) = usage(effects)
    assert (report.outcome_effect, report.decision_id) == ("escalated", on_sonnet)
    assert [d.chosen.model for d in decisions(effects) if d.chosen is not None] == ["opus"]


def test_foreign_report_in_the_same_batch_as_the_failure_is_recorded(catalog: Catalog) -> None:
    run = Run(catalog)
    run.free("h1", "haiku")
    run.free("h2", "haiku")
    run.task()
    router = run.router
    router.begin_batch("50-0")
    effects: list[Effect] = []
    for i, slot_id in enumerate(("h1", "h1", "h2")):  # failure, its repeat, a foreign one: one batch
        completed = {"task_id": "t1", "outcome": "failed", "failure": "capability"}
        doc = {"type": "slot.free", "slot_id": slot_id, "model": "haiku", "completed": completed}
        event = parse_event(orjson.dumps(doc), models=catalog.models.keys())
        effects += router.apply(event, event_id=f"50-{i}", now_ms=NOW + 100)
    effects += router.match(now_ms=NOW + 100)
    assert [(u.slot_id, u.outcome_effect) for u in usage(effects)] == [("h1", "escalated"), ("h2", "ignored")]
    assert router.escalations["t1"].escalations == 1

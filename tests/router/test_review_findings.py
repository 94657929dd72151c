"""Review findings: each test demonstrates a suspected correctness bug (expected to FAIL until fixed)."""

from __future__ import annotations

from collections.abc import Mapping
from importlib import resources
from typing import Any

from router.catalog import Catalog, load_catalog, parse_catalog
from router.engine import UTIL_SEP, Effect, Router, RouterConfig
from router.slots import SlotState
from router.values import (
    Decision,
    Event,
    Outcome,
    QuotaUtilisation,
    SlotFree,
    SlotGone,
    Task,
    TaskCancelled,
    TaskPending,
    Usage,
)

T0 = 1_700_000_000_000


def pending(task_id: str, priority: int = 50, requires: Mapping[str, int] | None = None, **kw: Any) -> TaskPending:
    fields = {"task_id": task_id, "priority": priority, "requires": dict(requires or {})}
    return TaskPending(
        task=Task(task_id=task_id, priority=priority, requires=dict(requires or {}), fields=fields, **kw)
    )


def free(slot_id: str, model: str, completed: str | None = None) -> SlotFree:
    usage = Usage(task_id=completed, input_tokens=1, output_tokens=1, cost_usd=0.0) if completed else None
    return SlotFree(slot_id=slot_id, model=model, account="default", completed=usage)


class Harness:
    def __init__(self, catalog: Catalog, **config: Any) -> None:
        self.catalog = catalog
        self.config = RouterConfig(**config)
        self.router = Router(catalog, config=self.config)
        self.n = 0
        self.now_ms = T0
        # a stand-in for the Redis snapshot that add_ledger_changes writes
        self.snap: dict[str, Any] = {"slots": {}, "waiting": {}, "assigned": {}, "ev": [], "util": {}}

    def batch(self, *events: Event) -> list[Effect]:
        self.n += 1
        self.router.begin_batch(f"{self.n}-0")
        effects: list[Effect] = []
        for i, event in enumerate(events):
            effects += self.router.apply(event, event_id=f"{self.n}-{i}", now_ms=self.now_ms)
        effects += self.router.expire_assignments(now_ms=self.now_ms)
        effects += self.router.match(now_ms=self.now_ms)
        self._persist()
        return effects

    def _persist(self) -> None:
        ch = self.router.drain_changes()
        self.snap["slots"].update(ch.slots)
        for name, part in (("waiting", ch.waiting), ("assigned", ch.assigned)):
            for k, v in part.items():
                if v is None:
                    self.snap[name].pop(k, None)
                else:
                    self.snap[name][k] = v
        self.snap["ev"] = (self.snap["ev"] + ch.ev_added)[-self.config.ev_window :]
        self.snap["util"].update(ch.utilisation)

    def restart(self, catalog: Catalog | None = None) -> None:
        self.router = Router(catalog or self.catalog, config=self.config)
        self.router.restore(
            slots=list(self.snap["slots"].values()),
            waiting=list(self.snap["waiting"].values()),
            assigned=dict(self.snap["assigned"]),
            ev_values=list(self.snap["ev"]),
            utilisation=dict(self.snap["util"]),
        )


def decisions(effects: list[Effect]) -> list[Decision]:
    return [e for e in effects if isinstance(e, Decision)]


def assert_assignments_booked(h: Harness, effects: list[Effect]) -> None:
    """Every ASSIGNED decision must have booked its slot and taken the task out of waiting."""
    for d in decisions(effects):
        if d.outcome is Outcome.ASSIGNED:
            assert d.chosen is not None
            rec = h.router.ledger.slots[d.chosen.slot_id]
            assert rec.state is SlotState.BUSY and rec.task_id == d.task.task_id, (
                f"{d.decision_id}: assigned {d.task.task_id} to {d.chosen.slot_id} but the slot is "
                f"{rec.state.value} with {rec.task_id}"
            )
            assert d.task.task_id not in h.router.waiting, f"{d.task.task_id} assigned yet still waiting"


# 2 --------------------------------------------------------------------------------------------


def test_catalog_change_across_restart_wedges_matching_round() -> None:
    """Waiting tasks are restored with the `models` computed under the old catalogue. Lower a
    model's capability (prices/ratings are data, edited between restarts) and the index offers a
    task that route() no longer finds capable: AssertionError on every batch, forever."""
    old = load_catalog()
    h = Harness(old)
    h.batch(pending("deep", 50, {"coding": 8}))  # sonnet/codex/opus/gpt-5 capable; nothing free
    old_text = resources.files("router").joinpath("data/catalog.toml").read_text()
    text = old_text.replace(
        "capabilities = { coding = 8, reasoning = 7, analysis = 7, writing = 8, safety = 8 }",
        "capabilities = { coding = 7, reasoning = 7, analysis = 7, writing = 8, safety = 8 }",
    )
    assert text != old_text
    h.restart(parse_catalog(text))
    effects = h.batch(free("s1", "sonnet"))  # raises AssertionError: index offered deep, route found no slot
    assert [d.outcome for d in decisions(effects)] == []


# 3 --------------------------------------------------------------------------------------------


# 4 --------------------------------------------------------------------------------------------


def test_cancel_of_assigned_unstarted_task_is_resurrected_by_requeue() -> None:
    """task.cancelled while the task is assigned but not started is ignored; if the slot then leaves
    before starting it, the cancelled task goes back to waiting and is assigned to another slot."""
    h = Harness(load_catalog())
    h.batch(free("h1", "haiku"), pending("a", 50))
    h.batch(TaskCancelled(task_id="a"))
    h.batch(SlotGone(slot_id="h1"))
    effects = h.batch(free("h2", "haiku"))
    assert [d.task.task_id for d in decisions(effects) if d.outcome is Outcome.ASSIGNED] == []


# 5 --------------------------------------------------------------------------------------------


def test_dry_run_slot_stuck_busy_when_live_side_completed_a_different_task() -> None:
    """A dry run shadowing a live dispatcher: the slot reports completing the task the LIVE side
    gave it. The dry ledger treats that as a stale duplicate and keeps the slot busy forever
    (heartbeats prevent lapse), so the shadow stops assigning after one decision per slot."""
    h = Harness(load_catalog(), dry_run=True)
    h.batch(free("h1", "haiku"), pending("a", 60), pending("b", 50))  # dry: a -> h1
    assert h.router.ledger.slots["h1"].task_id == "a"
    h.batch(free("h1", "haiku", completed="live-task-7"))  # the slot is idle again
    assert h.router.ledger.slots["h1"].task_id == "b", "dry ledger keeps h1 busy with a forever"


# 6 --------------------------------------------------------------------------------------------


def test_utilisation_with_separator_in_account_does_not_round_trip() -> None:
    h = Harness(load_catalog())
    account = f"team{UTIL_SEP}x"
    h.batch(QuotaUtilisation(model="haiku", account=account, utilisation=0.7))
    h.restart()
    assert h.router.ledger.utilisation_of(account, "haiku") == 0.7


# 7 --------------------------------------------------------------------------------------------


def test_arrival_order_lost_after_restart_when_held_task_requeues() -> None:
    """restore() sets next_seq from waiting tasks only; tasks held on slots keep higher seqs, so a
    task published after a restart can get the same seq as an older, held task. When the held task
    lapses back, the tie is broken by task id, not arrival."""
    h = Harness(load_catalog(), ageing_points_per_service_time=0.0, ev_rank_points=0.0)
    h.batch(pending("keep", 50, {"coding": 10}))  # opus-only: stays waiting, seq 1
    h.batch(pending("zz-old", 50, ev=0.5))  # seq 2
    h.batch(free("h1", "haiku"))  # zz-old -> h1 (held with seq 2)
    h.restart()
    h.batch(pending("aa-new", 50, ev=0.5))  # gets seq 2 again
    h.batch(SlotGone(slot_id="h1"))  # zz-old requeued with seq 2
    effects = h.batch(free("h2", "haiku"))
    got = [d.task.task_id for d in decisions(effects) if d.outcome is Outcome.ASSIGNED]
    assert got == ["zz-old"], f"older task should go first, got {got}"


def test_nan_p50_corrupts_aged_premium_list_and_wedges_default_config() -> None:
    """Default config (ageing on). While P50 is NaN, _Group._sync_premium stores premium_p50 = nan
    without moving anything; once P50 is a number again, every later sync compares against nan and
    moves nothing, so a low-EV task stays in premium_aged. The index then offers it to a free
    premium slot that route() refuses (premium block): AssertionError on every batch."""
    h = Harness(load_catalog())
    big = 1.7e308
    h.batch(pending("x0", 50, {"no-such-cap": 1}, ev=-big))
    # window becomes [-big, -big, big]: P50 nan. T takes o1; L waits in the same group.
    h.batch(free("o1", "opus"), pending("T", 80, ev=big), pending("L", 50, ev=-big))
    assert h.router.ledger.slots["o1"].task_id == "T" and "L" in h.router.waiting
    h.batch(*[pending(f"y{i}", 50, {"no-such-cap": 1}, ev=0.9) for i in range(10)])
    assert h.router.ev_window.p50 == 0.9
    effects = h.batch(free("o2", "opus"))  # L (EV far below P50, priority 50) may not use premium
    assert [d.outcome for d in decisions(effects)] == []


def test_duplicated_slot_free_with_completed_reports_usage_twice() -> None:
    """A retried slot.free XADD (the case _slot_free's guard was written for) arriving while the
    slot is still free reports the same completed task's usage a second time (different event id,
    so the recorder stores both: cost counted twice)."""
    from router.engine import UsageReported

    h = Harness(load_catalog())
    h.batch(free("h1", "haiku"), pending("a", 50))
    first = h.batch(free("h1", "haiku", completed="a"))
    again = h.batch(free("h1", "haiku", completed="a"))
    reports = [e for e in first + again if isinstance(e, UsageReported)]
    assert len(reports) == 1, f"usage of task a reported {len(reports)} times"

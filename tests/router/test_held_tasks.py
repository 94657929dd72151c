"""A task held by a slot (assigned, not yet done) and the events that release it: a cancel before
it starts, a completion the dry-run ledger never assigned, a retried slot.free."""

from __future__ import annotations

from support.router_harness import RouterHarness, assigned, free, pending

from router.catalog import load_catalog
from router.engine import UsageReported
from router.values import SlotGone, TaskCancelled, Usage


def test_a_task_cancelled_while_assigned_but_unstarted_is_not_requeued_when_its_slot_leaves() -> None:
    h = RouterHarness(load_catalog(), snapshot=True)
    h.batch(free("h1", "haiku"), pending("a", 50))
    h.batch(TaskCancelled(task_id="a"))
    h.batch(SlotGone(slot_id="h1"))
    assert assigned(h.batch(free("h2", "haiku"))) == []


def test_a_dry_run_slot_is_free_again_after_completing_the_live_sides_task() -> None:
    """A dry run shadowing a live dispatcher: the slot reports completing the task the LIVE side
    gave it. The dry ledger must take that as the slot being idle, not as a stale duplicate (which,
    heartbeats preventing a lapse, would keep the slot busy forever)."""
    h = RouterHarness(load_catalog(), snapshot=True, dry_run=True)
    h.batch(free("h1", "haiku"), pending("a", 60), pending("b", 50))  # dry: a -> h1
    assert h.router.ledger.slots["h1"].task_id == "a"
    h.batch(free("h1", "haiku", completed=Usage(task_id="live-task-7")))  # the slot is idle again
    assert h.router.ledger.slots["h1"].task_id == "b", "dry ledger keeps h1 busy with a forever"


def test_a_retried_slot_free_reports_the_completed_tasks_usage_once() -> None:
    """A retried slot.free XADD (the case _slot_free's guard was written for) arriving while the
    slot is still free has a new event id: reported again, the recorder would store both and count
    the cost twice."""
    h = RouterHarness(load_catalog(), snapshot=True)
    h.batch(free("h1", "haiku"), pending("a", 50))
    done = Usage(task_id="a", input_tokens=1, output_tokens=1, cost_usd=0.0)
    first = h.batch(free("h1", "haiku", completed=done))
    again = h.batch(free("h1", "haiku", completed=done))
    reports = [e for e in first + again if isinstance(e, UsageReported)]
    assert len(reports) == 1, f"usage of task a reported {len(reports)} times"

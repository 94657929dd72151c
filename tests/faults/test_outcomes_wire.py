"""Task outcomes against a live `router worker` process (PROTOCOL.md v1.1): escalation and retry
with their caps, duplicate and foreign outcomes, bad outcomes dead-lettered, and SIGKILL of the
leader between a failure report and the re-assignment."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from typing import Any

import pytest
import redis
from support.processes import RouterProcess, wait_for

from streams.clients import Dispatcher, Ops, Slot
from streams.codec import decode
from streams.keys import Keys

pytestmark = pytest.mark.integration
Start = Callable[..., RouterProcess]


def records(r: redis.Redis, stream: str) -> list[dict[str, Any]]:
    return [decode(fields[b"data"]) for _, fields in r.xrange(stream)]


def statuses(r: redis.Redis, keys: Keys, task_id: str = "t1") -> list[dict[str, Any]]:
    return [s for s in records(r, keys.status) if s["task_id"] == task_id]


def kinds(r: redis.Redis, keys: Keys, task_id: str = "t1") -> list[str]:
    return [s["type"] for s in statuses(r, keys, task_id)]


def assignments(r: redis.Redis, keys: Keys, slot_id: str) -> list[dict[str, Any]]:
    return records(r, keys.assign(slot_id))


def wait_kinds(r: redis.Redis, keys: Keys, expected: list[str], task_id: str = "t1") -> None:
    wait_for(lambda: kinds(r, keys, task_id) == expected, what=f"{task_id} statuses {expected}")


class Fleet:
    def __init__(self, r: redis.Redis, keys: Keys) -> None:
        self.r, self.keys = r, keys
        self.dispatcher = Dispatcher(r, keys)
        self.slots: dict[str, Slot] = {}

    def slot(self, slot_id: str, model: str) -> Slot:
        self.slots[slot_id] = Slot(self.r, slot_id=slot_id, model=model, keys=self.keys)
        self.slots[slot_id].free()
        return self.slots[slot_id]

    def report(self, slot_id: str, outcome: str, failure: str | None = None, task_id: str = "t1") -> None:
        self.slots[slot_id].free(completed={"task_id": task_id, "cost_usd": 0.01}, outcome=outcome, failure=failure)

    def task(self, task_id: str = "t1") -> None:
        self.dispatcher.publish_task(task_id, priority=50, requires={"coding": 3}, layer="build")


def assigned_on(r: redis.Redis, keys: Keys, *slots: tuple[str, str]) -> Fleet:
    """These (slot id, model) slots free, then t1 published and assigned."""
    fleet = Fleet(r, keys)
    for slot_id, model in slots:
        fleet.slot(slot_id, model)
    fleet.task()
    wait_kinds(r, keys, ["assigned"])
    return fleet


def test_capability_failure_on_tier_1_is_reassigned_on_tier_2(r: redis.Redis, keys: Keys, start_worker: Start) -> None:
    start_worker()
    fleet = assigned_on(r, keys, ("h1", "haiku"), ("s1", "sonnet"))
    first = statuses(r, keys)[0]
    assert first["slot_id"] == "h1"
    fleet.report("h1", "failed", "capability")
    wait_kinds(r, keys, ["assigned", "escalated", "assigned"])
    _, escalated, again = statuses(r, keys)
    assert (escalated["attempt"], escalated["previous_decision_id"]) == (2, first["decision_id"])
    assert (again["slot_id"], again["model"], again["attempt"]) == ("s1", "sonnet", 2)
    (assignment,) = assignments(r, keys, "s1")
    assert assignment["decision_id"] == again["decision_id"]
    chain = [d for d in Ops(r, keys).recent_decisions() if d[1]["task_id"] == "t1"]
    assert [d["attempt"] for _, d in chain] == [1, 2, 2]
    assert chain[1][1]["reason_code"] == "escalated"


def test_after_the_escalation_cap_the_task_fails(r: redis.Redis, keys: Keys, start_worker: Start) -> None:
    start_worker(env={"ROUTER_MAX_ESCALATIONS": "1"})
    fleet = assigned_on(r, keys, ("h1", "haiku"), ("s1", "sonnet"), ("o1", "opus"))
    fleet.report("h1", "failed", "capability")
    wait_kinds(r, keys, ["assigned", "escalated", "assigned"])
    fleet.report("s1", "failed", "capability")
    wait_kinds(r, keys, ["assigned", "escalated", "assigned", "failed"])
    failed = statuses(r, keys)[-1]
    assert "ROUTER_MAX_ESCALATIONS" in failed["reason"] and failed["attempt"] == 2
    assert assignments(r, keys, "o1") == []


def test_transient_failures_retry_then_fail_at_the_cap(r: redis.Redis, keys: Keys, start_worker: Start) -> None:
    start_worker(env={"ROUTER_MAX_RETRIES": "2"})
    fleet = assigned_on(r, keys, ("h1", "haiku"))
    for n in (1, 2):
        fleet.report("h1", "failed", "transient")
        wait_for(lambda n=n: kinds(r, keys).count("retried") == n and kinds(r, keys)[-1] == "assigned", what="retry")
    assert len(assignments(r, keys, "h1")) == 3  # the same rules: haiku serves it again
    fleet.report("h1", "failed", "transient")
    wait_kinds(r, keys, ["assigned", "retried", "assigned", "retried", "assigned", "failed"])
    assert "ROUTER_MAX_RETRIES" in statuses(r, keys)[-1]["reason"]


def test_duplicate_and_foreign_outcomes_change_nothing(r: redis.Redis, keys: Keys, start_worker: Start) -> None:
    start_worker()
    fleet = assigned_on(r, keys, ("h1", "haiku"), ("h2", "haiku"), ("s1", "sonnet"))
    fleet.report("h1", "failed", "capability")
    fleet.report("h1", "failed", "capability")  # the same report again (a retried XADD)
    fleet.report("h2", "failed", "capability")  # h2 never had t1
    fleet.report("h2", "failed", "capability", task_id="never-published")
    fleet.slots["h2"].heartbeat()
    marker = fleet.slots["h2"].heartbeat()
    wait_for(lambda: _processed(r, keys, marker), what="every report processed")
    assert kinds(r, keys) == ["assigned", "escalated", "assigned"]
    assert statuses(r, keys, "never-published") == []
    usage = records(r, keys.usage)
    assert [(u["slot_id"], u["outcome_effect"]) for u in usage] == [
        ("h1", "escalated"),
        ("h2", "ignored"),
        ("h2", "ignored"),
    ]
    assert records(r, keys.dead) == []


def test_bad_outcomes_are_dead_lettered_with_the_reason(r: redis.Redis, keys: Keys, start_worker: Start) -> None:
    start_worker()
    fleet = assigned_on(r, keys, ("h1", "haiku"))
    bad = [
        {"task_id": "t1", "outcome": "maybe"},
        {"task_id": "t1", "outcome": "failed"},
        {"task_id": "t1", "outcome": "succeeded", "detail": "x" * 201},
        {"task_id": "t1", "outcome": "failed", "failure": 3},
    ]
    for completed in bad:
        fleet.slots["h1"].free(completed=completed)
    wait_for(lambda: len(records(r, keys.dead)) == 4, what="four dead letters")
    reasons = [d["error"] for d in records(r, keys.dead)]
    assert "outcome must be one of succeeded, failed" in reasons[0]
    assert "needs a failure" in reasons[1]
    assert "detail must be at most 200 characters" in reasons[2]
    assert "failure must be one of" in reasons[3]
    fleet.report("h1", "succeeded")  # the worker carries on, and t1 was left as it was
    wait_for(lambda: len(records(r, keys.usage)) == 1, what="the good report")
    assert kinds(r, keys) == ["assigned"]


def test_leader_killed_after_the_failure_report_loses_and_duplicates_nothing(
    r: redis.Redis, keys: Keys, start_worker: Start
) -> None:
    """SIGSTOP the leader, report the failure, SIGKILL it: the report is unprocessed or its step
    half-sent. The standby takes over; once a tier 2 slot frees, t1 is escalated exactly once and
    assigned there exactly once."""
    leader = start_worker()
    standby = start_worker(wait=False)
    fleet = assigned_on(r, keys, ("h1", "haiku"))
    os.kill(leader.proc.pid, signal.SIGSTOP)
    fleet.report("h1", "failed", "capability")
    leader.kill()
    wait_for(lambda: '"leading"' in standby.log(), what="the standby to lead", timeout_s=30)
    wait_kinds(r, keys, ["assigned", "escalated"])
    fleet.slot("s1", "sonnet")
    wait_kinds(r, keys, ["assigned", "escalated", "assigned"])
    assert [a["task_id"] for a in assignments(r, keys, "s1")] == ["t1"]
    assert len(assignments(r, keys, "h1")) == 1
    fleet.report("h1", "failed", "capability")  # the old report again, after the takeover
    marker = fleet.slots["s1"].heartbeat()
    wait_for(lambda: _processed(r, keys, marker), what="the repeat processed")
    assert kinds(r, keys) == ["assigned", "escalated", "assigned"]


def test_leader_killed_between_escalation_and_reassignment(r: redis.Redis, keys: Keys, start_worker: Start) -> None:
    """The escalation is committed (no tier 2 slot yet), then the leader dies: its successor
    restores the chain from the snapshot and assigns attempt 2 on tier 2, with haiku excluded."""
    leader = start_worker()
    fleet = assigned_on(r, keys, ("h1", "haiku"))
    fleet.report("h1", "failed", "capability")
    wait_kinds(r, keys, ["assigned", "escalated"])
    leader.kill()
    fleet.slots["h1"].free()  # haiku free again: excluded, so it must not take t1
    fleet.slot("s1", "sonnet")
    start_worker()
    wait_kinds(r, keys, ["assigned", "escalated", "assigned"])
    last = statuses(r, keys)[-1]
    assert (last["model"], last["attempt"]) == ("sonnet", 2)
    assert len(assignments(r, keys, "h1")) == 1


def _processed(r: redis.Redis, keys: Keys, entry_id: str) -> bool:
    """True once the live group has acknowledged everything up to `entry_id`."""
    groups = {g["name"].decode(): g for g in r.xinfo_groups(keys.events)}
    group = groups.get("router")
    if group is None:
        return False
    last = group["last-delivered-id"].decode()
    delivered = tuple(int(x) for x in last.split("-")) >= tuple(int(x) for x in entry_id.split("-"))
    return delivered and int(group["pending"]) == 0

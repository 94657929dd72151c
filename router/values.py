"""Plain values that cross the router's boundary: tasks, input events, decisions and effects.

Nothing changes a value once it is built. The ones built for every event or decision (tasks,
slot.free, decisions and their alternatives) are plain slotted dataclasses rather than frozen ones
only because a frozen dataclass takes about twice as long to build, on the router's hottest path;
and they define `__init__` themselves (`init=False`), because mypyc compiles a written `__init__`
to C while the one dataclasses generates runs as Python, about ten times slower, and these are
built several times per event. The same holds for the other values built per event elsewhere in
router/ and streams/ (slot records, waiting tasks, stream entries). The fields stay the one
statement of what a value holds: tests/router/test_value_classes.py finds every dataclass of the
two packages with a written `__init__` and checks its parameters (names, order, keyword-only,
defaults) and its body against the fields.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Final

DEFAULT_ACCOUNT: Final = "default"


@dataclass(slots=True, kw_only=True, init=False)
class Task:
    """A task to route: what it requires of a model, what it is worth, and how the dispatcher
    described it."""

    task_id: str
    priority: int
    requires: Mapping[str, int]
    layer: str = "unknown"
    ev: float | None = None
    quest_priority: int | None = None
    est_input_tokens: int | None = None
    est_output_tokens: int | None = None
    title: str | None = None
    submitted_at_ms: int | None = None
    # The task's fields exactly as the dispatcher sent them, handed on to the slot.
    fields: Mapping[str, Any] = field(default_factory=dict)

    def __init__(
        self,
        *,
        task_id: str,
        priority: int,
        requires: Mapping[str, int],
        layer: str = "unknown",
        ev: float | None = None,
        quest_priority: int | None = None,
        est_input_tokens: int | None = None,
        est_output_tokens: int | None = None,
        title: str | None = None,
        submitted_at_ms: int | None = None,
        fields: Mapping[str, Any] | None = None,
    ) -> None:
        self.task_id = task_id
        self.priority = priority
        self.requires = requires
        self.layer = layer
        self.ev = ev
        self.quest_priority = quest_priority
        self.est_input_tokens = est_input_tokens
        self.est_output_tokens = est_output_tokens
        self.title = title
        self.submitted_at_ms = submitted_at_ms
        self.fields = {} if fields is None else fields


class TaskResult(StrEnum):
    """`completed.outcome` (PROTOCOL.md v1.1, Task outcomes); absent means unreported."""

    SUCCEEDED = "succeeded"
    FAILED = "failed"


class Failure(StrEnum):
    """`completed.failure`: why a failed task failed, which decides what the router does next."""

    CAPABILITY = "capability"  # the model could not do it: escalate to a higher tier
    TRANSIENT = "transient"  # rate limit, timeout, crash: retry at the same rules
    ABANDONED = "abandoned"  # given up by the slot or its owner: no retry


@dataclass(slots=True, kw_only=True)
class Usage:
    """What a finished task consumed, as its slot reported it (any part may be unknown)."""

    task_id: str
    input_tokens: int | None = None
    output_tokens: int | None = None
    cost_usd: float | None = None
    outcome: TaskResult | None = None
    failure: Failure | None = None  # set exactly when outcome is FAILED
    detail: str | None = None


# Input events (the wire's `type` values in comments).


@dataclass(slots=True, kw_only=True, init=False)
class TaskPending:
    """task.pending: the dispatcher asks for a task to be routed."""

    task: Task

    def __init__(self, *, task: Task) -> None:
        self.task = task


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskCancelled:  # task.cancelled: the dispatcher withdraws a task, waiting or assigned
    task_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskStarted:  # task.started (an extension): the slot began work on its assignment
    task_id: str
    slot_id: str


@dataclass(slots=True, kw_only=True, init=False)
class SlotFree:
    """slot.free: a slot is ready for a task, reporting what the task it finished used, if any."""

    slot_id: str
    model: str
    account: str = DEFAULT_ACCOUNT
    completed: Usage | None = None

    def __init__(
        self, *, slot_id: str, model: str, account: str = DEFAULT_ACCOUNT, completed: Usage | None = None
    ) -> None:
        self.slot_id = slot_id
        self.model = model
        self.account = account
        self.completed = completed


@dataclass(frozen=True, slots=True, kw_only=True)
class SlotHeartbeat:  # slot.heartbeat: the slot is still there
    slot_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class SlotGone:  # slot.gone: the slot left; a task it had not started waits again
    slot_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class QuotaUtilisation:  # quota.utilisation: how much of an account's quota for a model is used, 0..1
    model: str
    utilisation: float
    account: str = DEFAULT_ACCOUNT


Event = TaskPending | TaskCancelled | TaskStarted | SlotFree | SlotHeartbeat | SlotGone | QuotaUtilisation


class Outcome(StrEnum):
    ASSIGNED = "assigned"
    AWAIT_SLOT = "await_slot"
    UNROUTABLE = "unroutable"
    FAILED = "failed"  # given up after a failed outcome (escalation or retry cap, or abandoned)


class Verdict(StrEnum):
    CHOSEN = "chosen"
    BUSY = "busy"
    STALE = "stale"
    GONE = "gone"
    INCAPABLE = "incapable"
    PREMIUM_BLOCKED = "premium_blocked"
    TIER_NOT_PREFERRED = "tier_not_preferred"
    HIGHER_UTILISATION = "higher_utilisation"
    TIE_BREAK = "tie_break"
    BUDGET_EXHAUSTED = "budget_exhausted"
    LOW_SUCCESS = "low_success"  # the quality gate stopped rating this model for the task's layer


class ReasonCode(StrEnum):
    CHEAPEST_CAPABLE = "cheapest_capable"
    OVERRIDE_HIGHEST_TIER = "override_highest_tier"
    ONLY_PREMIUM_RATEABLE = "only_premium_rateable"
    NO_FREE_CAPABLE_SLOT = "no_free_capable_slot"
    PREMIUM_BLOCKED = "premium_blocked"
    NO_LIVE_SLOT = "no_live_slot"
    NO_CAPABLE_MODEL = "no_capable_model"
    ASSIGNMENT_LAPSED = "assignment_lapsed"
    BUDGET_EXHAUSTED = "budget_exhausted"
    ESCALATED = "escalated"
    RETRIED = "retried"
    GAVE_UP = "failed"


_PLAIN: Final[dict[str, str]] = {m.value: m.value for e in (Outcome, Verdict, ReasonCode) for m in e}


def plain(member: Outcome | Verdict | ReasonCode) -> str:
    """A member's value as a plain str, for JSON documents. `.value` is a property that runs as
    Python (about 0.3 µs), and a decision reads several; a member hashes and compares as its value,
    so a dict read gives the same str for much less."""
    return _PLAIN[member]


@dataclass(slots=True, kw_only=True, init=False)
class Alternative:
    """One slot considered, or several of one pool that share a verdict (then `count` > 1)."""

    model: str
    account: str
    tier: int
    verdict: Verdict
    slot_id: str | None = None
    detail: str | None = None
    count: int = 1
    slot_ids: tuple[str, ...] = ()

    def __init__(
        self,
        *,
        model: str,
        account: str,
        tier: int,
        verdict: Verdict,
        slot_id: str | None = None,
        detail: str | None = None,
        count: int = 1,
        slot_ids: tuple[str, ...] = (),
    ) -> None:
        self.model = model
        self.account = account
        self.tier = tier
        self.verdict = verdict
        self.slot_id = slot_id
        self.detail = detail
        self.count = count
        self.slot_ids = slot_ids

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "slot_id": self.slot_id,
            "model": self.model,
            "account": self.account,
            "tier": self.tier,
            "verdict": plain(self.verdict),
        }
        if self.detail:
            out["detail"] = self.detail
        if self.count != 1:
            out["count"] = self.count
            out["slot_ids"] = list(self.slot_ids)
        return out


@dataclass(slots=True, kw_only=True, init=False)
class ChosenSlot:
    """The slot a decision assigned the task to, with its model's tier."""

    slot_id: str
    model: str
    account: str
    tier: int

    def __init__(self, *, slot_id: str, model: str, account: str, tier: int) -> None:
        self.slot_id = slot_id
        self.model = model
        self.account = account
        self.tier = tier


@dataclass(slots=True, kw_only=True, init=False)
class Thresholds:
    """The EV numbers a decision used: the task's EV and the window's P50 and P90."""

    ev: float
    p50: float | None
    p90: float | None

    def __init__(self, *, ev: float, p50: float | None, p90: float | None) -> None:
        self.ev = ev
        self.p50 = p50
        self.p90 = p90


@dataclass(slots=True, kw_only=True, init=False)
class QueuePlace:
    """Where a waiting task stands (PROTOCOL.md v1.1 "Queue position and ETA"): its 1-based place
    among the waiting tasks that compete for any model it may use, in the order the matching round
    would serve them; the estimated seconds until it is assigned (None until the router has seen a
    task finish on one of its models); and since when it waits (epoch ms)."""

    position: int
    eta_s: float | None
    waiting_since_ms: int

    def __init__(self, *, position: int, eta_s: float | None, waiting_since_ms: int) -> None:
        self.position = position
        self.eta_s = eta_s
        self.waiting_since_ms = waiting_since_ms

    def to_json(self) -> dict[str, Any]:
        return {"position": self.position, "eta_s": self.eta_s, "waiting_since_ms": self.waiting_since_ms}


@dataclass(slots=True, kw_only=True, init=False)
class Decision:
    """One routing decision: the outcome for a task, why, and every slot considered."""

    decision_id: str
    task: Task
    outcome: Outcome
    reason_code: ReasonCode
    reason: str
    thresholds: Thresholds
    decided_at_ms: int
    chosen: ChosenSlot | None = None
    alternatives: tuple[Alternative, ...] = ()
    override: bool = False
    min_tier: int | None = None
    est_cost_usd: float | None = None
    event_id: str | None = None
    dry_run: bool = False
    policy_version: str = ""
    attempt: int = 1  # 1-based; each escalation or retry starts the next attempt
    previous_decision_id: str | None = None  # the failed assignment that started this attempt
    # an await_slot decision: the task's place in the queue as of this decision (None otherwise)
    queue_place: QueuePlace | None = None

    def __init__(
        self,
        *,
        decision_id: str,
        task: Task,
        outcome: Outcome,
        reason_code: ReasonCode,
        reason: str,
        thresholds: Thresholds,
        decided_at_ms: int,
        chosen: ChosenSlot | None = None,
        alternatives: tuple[Alternative, ...] = (),
        override: bool = False,
        min_tier: int | None = None,
        est_cost_usd: float | None = None,
        event_id: str | None = None,
        dry_run: bool = False,
        policy_version: str = "",
        attempt: int = 1,
        previous_decision_id: str | None = None,
        queue_place: QueuePlace | None = None,
    ) -> None:
        self.decision_id = decision_id
        self.task = task
        self.outcome = outcome
        self.reason_code = reason_code
        self.reason = reason
        self.thresholds = thresholds
        self.decided_at_ms = decided_at_ms
        self.chosen = chosen
        self.alternatives = alternatives
        self.override = override
        self.min_tier = min_tier
        self.est_cost_usd = est_cost_usd
        self.event_id = event_id
        self.dry_run = dry_run
        self.policy_version = policy_version
        self.attempt = attempt
        self.previous_decision_id = previous_decision_id
        self.queue_place = queue_place

    def to_record(self) -> dict[str, Any]:
        """The decision record of PROTOCOL.md, as a JSON-ready dict."""
        chosen = self.chosen
        return {
            "decision_id": self.decision_id,
            "task_id": self.task.task_id,
            "outcome": plain(self.outcome),
            "reason_code": plain(self.reason_code),
            "reason": self.reason,
            "chosen_slot_id": chosen.slot_id if chosen else None,
            "chosen_model": chosen.model if chosen else None,
            "chosen_tier": chosen.tier if chosen else None,
            "account": chosen.account if chosen else None,
            "layer": self.task.layer,
            "priority": self.task.priority,
            "quest_priority": self.task.quest_priority,
            "title": self.task.title,
            "ev": self.thresholds.ev,
            "ev_p50": self.thresholds.p50,
            "ev_p90": self.thresholds.p90,
            "override": self.override,
            "min_tier": self.min_tier,
            "est_cost_usd": self.est_cost_usd,
            "alternatives": [a.to_json() for a in self.alternatives],
            "decided_at": self.decided_at_ms,
            "dry_run": self.dry_run,
            "event_id": self.event_id,
            "policy_version": self.policy_version,
            "attempt": self.attempt,
            "previous_decision_id": self.previous_decision_id,
            # the highest level the task requires of any capability: the quality record's other axis
            "requirement_level": max(self.task.requires.values()) if self.task.requires else 0,
        }


def task_to_json(task: Task) -> dict[str, Any]:
    """A task as the ledger snapshot stores it (its parsed values and the fields as received). The
    optional values a task does not have are left out rather than written as null: every busy slot
    and waiting task carries one of these, and task_from_json reads a missing value as None."""
    doc: dict[str, Any] = {
        "task_id": task.task_id,
        "priority": task.priority,
        "requires": dict(task.requires),
        "layer": task.layer,
        "fields": dict(task.fields),
    }
    optional: tuple[tuple[str, object], ...] = (
        ("ev", task.ev),
        ("quest_priority", task.quest_priority),
        ("est_input_tokens", task.est_input_tokens),
        ("est_output_tokens", task.est_output_tokens),
        ("title", task.title),
        ("submitted_at_ms", task.submitted_at_ms),
    )
    for name, value in optional:
        if value is not None:
            doc[name] = value
    return doc


def task_from_json(doc: Mapping[str, Any]) -> Task:
    return Task(
        task_id=doc["task_id"],
        priority=int(doc["priority"]),
        requires=dict(doc.get("requires") or {}),
        layer=doc.get("layer") or "unknown",
        ev=doc.get("ev"),
        quest_priority=doc.get("quest_priority"),
        est_input_tokens=doc.get("est_input_tokens"),
        est_output_tokens=doc.get("est_output_tokens"),
        title=doc.get("title"),
        submitted_at_ms=doc.get("submitted_at_ms"),
        fields=dict(doc.get("fields") or {}),
    )


# Effects: what a batch produces besides its decisions (the wire form is in streams/outputs.py).


@dataclass(frozen=True, slots=True, kw_only=True)
class Cancelled:
    """A task withdrawn by task.cancelled, to be told to the dispatcher and recorded."""

    task_id: str
    event_id: str
    at_ms: int


@dataclass(frozen=True, slots=True, kw_only=True)
class UsageReported:
    """A slot's usage report, tied to the decision that gave it the task (when known)."""

    usage: Usage
    slot_id: str
    model: str
    account: str
    decision_id: str | None
    event_id: str
    at_ms: int
    layer: str | None = None  # the task's layer, when the router knows the task
    # What the router did with the outcome: escalated, retried, failed, none (succeeded or
    # unreported: nothing to do), or ignored (not the slot's current assignment of that task).
    outcome_effect: str | None = None
    attempt: int | None = None


Effect = Decision | Cancelled | UsageReported

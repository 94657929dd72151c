"""What the router writes: the wire form of its effects, added to one batch's atomic step."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

from router.engine import Cancelled, Effect, LedgerChanges, UsageReported
from router.values import Decision, Outcome, ReasonCode, plain
from streams.codec import encode
from streams.commit import AtomicStep
from streams.keys import Keys, StateKeys


@dataclass(frozen=True, slots=True, kw_only=True)
class StreamCaps:
    """Approximate MAXLEN per stream; 0 means uncapped. Decisions and usage are left uncapped by
    default: the recorder trims them once they are safely in SQL."""

    status: int = 100_000
    assign: int = 1_000
    decisions: int = 0
    usage: int = 0


def add_effects(step: AtomicStep, keys: Keys, effects: list[Effect], *, caps: StreamCaps, dry_run: bool) -> None:
    for effect in effects:
        if isinstance(effect, Decision):
            _decision(step, keys, effect, caps=caps, dry_run=dry_run)
        elif dry_run:
            continue  # a dry run publishes decision records and nothing else
        elif isinstance(effect, Cancelled):
            status = {
                "type": "cancelled",
                "task_id": effect.task_id,
                "decision_id": None,
                "reason": "cancelled by the dispatcher while awaiting a slot",
                "at": effect.at_ms,
            }
            step.xadd(keys.status, encode(status), maxlen=caps.status)
        elif isinstance(effect, UsageReported):
            step.xadd(keys.usage, encode(usage_message(effect)), maxlen=caps.usage)


def _decision(step: AtomicStep, keys: Keys, decision: Decision, *, caps: StreamCaps, dry_run: bool) -> None:
    step.xadd(keys.decisions, encode(decision.to_record()), maxlen=caps.decisions)
    if dry_run:
        return
    step.xadd(keys.status, encode(status_message(decision)), maxlen=caps.status)
    if decision.outcome is Outcome.ASSIGNED and decision.chosen is not None:
        step.xadd(keys.assign(decision.chosen.slot_id), encode(assignment_message(decision)), maxlen=caps.assign)


# A task waiting again after a failed outcome says why in its status type (PROTOCOL.md v1.1).
_WAITING_AGAIN = {ReasonCode.ESCALATED: "escalated", ReasonCode.RETRIED: "retried"}


def status_message(decision: Decision) -> dict[str, Any]:
    kind = plain(decision.outcome)
    if decision.outcome is Outcome.AWAIT_SLOT and decision.reason_code in _WAITING_AGAIN:
        kind = _WAITING_AGAIN[decision.reason_code]
    doc: dict[str, Any] = {
        "type": kind,
        "task_id": decision.task.task_id,
        "decision_id": decision.decision_id,
        "reason": decision.reason,
        "at": decision.decided_at_ms,
    }
    if decision.chosen is not None:
        doc["slot_id"] = decision.chosen.slot_id
        doc["model"] = decision.chosen.model
    if decision.attempt != 1:
        doc["attempt"] = decision.attempt
        doc["previous_decision_id"] = decision.previous_decision_id
    return doc


def assignment_message(decision: Decision) -> dict[str, Any]:
    chosen = decision.chosen
    assert chosen is not None
    return {
        "type": "assignment",
        "task_id": decision.task.task_id,
        "slot_id": chosen.slot_id,
        "model": chosen.model,
        "account": chosen.account,
        "decision_id": decision.decision_id,
        "task": dict(decision.task.fields),
    }


def usage_message(effect: UsageReported) -> dict[str, Any]:
    usage = effect.usage
    doc: dict[str, Any] = {
        "decision_id": effect.decision_id,
        "task_id": usage.task_id,
        "slot_id": effect.slot_id,
        "model": effect.model,
        "account": effect.account,
        "input_tokens": usage.input_tokens,
        "output_tokens": usage.output_tokens,
        "cost_usd": usage.cost_usd,
        "event_id": effect.event_id,
        "at": effect.at_ms,
    }
    if effect.outcome_effect is not None:  # v1.1: the outcome and what the router did with it
        doc.update(
            outcome=None if usage.outcome is None else usage.outcome.value,
            failure=None if usage.failure is None else usage.failure.value,
            detail=usage.detail,
            outcome_effect=effect.outcome_effect,
            attempt=effect.attempt,
            layer=effect.layer,
        )
    return doc


def dead_letter(entry_id: str, raw: bytes | None, error: str) -> dict[str, Any]:
    """The `router:dead` document: the raw entry kept whole (base64 if it is not UTF-8)."""
    doc: dict[str, Any] = {"source_id": entry_id, "error": error}
    if raw is None:
        doc["raw"] = None
        return doc
    try:
        doc["raw"] = raw.decode("utf-8")
    except UnicodeDecodeError:
        doc["raw"] = base64.b64encode(raw).decode("ascii")
        doc["raw_encoding"] = "base64"
    return doc


def add_ledger_changes(step: AtomicStep, state: StateKeys, changes: LedgerChanges, *, ev_window: int) -> None:
    for slot_id, doc in changes.slots.items():
        step.hset(state.slots, slot_id, encode(doc))
    _hash_changes(step, state.waiting, changes.waiting)
    _hash_changes(step, state.assigned, changes.assigned)
    for ev in changes.ev_added:
        step.rpush_capped(state.ev_window, repr(ev), keep=ev_window)
    for key, value in changes.utilisation.items():
        step.hset(state.utilisation, key, repr(value))
    for name, spend in (changes.budgets or {}).items():
        step.hset(state.budgets, name, encode(spend))
    _hash_changes(step, state.escalations, changes.escalations)
    for key, outcomes in changes.quality.items():
        step.hset(state.quality, key, outcomes)
    for key, doc in changes.rates.items():
        step.hset(state.rates, key, encode(doc))


def _hash_changes(step: AtomicStep, key: str, changes: dict[str, dict[str, Any] | None]) -> None:
    """Each field set to its new document, or deleted where the change is None."""
    for field_name, doc in changes.items():
        if doc is None:
            step.hdel(key, field_name)
        else:
            step.hset(key, field_name, encode(doc))

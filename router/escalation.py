"""What a failed outcome does to its task (PROTOCOL.md v1.1, Task outcomes): escalate, retry or give up.

A `capability` failure sends the task back to wait for a higher tier than the model that failed,
with that model excluded; a `transient` one sends it back at the rules it had; `abandoned` gives
it up; each kind is capped. The state of a task between attempts is an `Escalation`, kept in the
ledger snapshot so that a new leader resumes the chain where the old one left it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, Final

from router.catalog import Catalog
from router.policy import Assessment, is_premium_blocked
from router.quality import QualityGate
from router.values import Alternative, Failure, ReasonCode, Verdict

DEFAULT_MAX_ESCALATIONS: Final = 2
DEFAULT_MAX_RETRIES: Final = 2

Notes = dict[str, tuple[Verdict, str]]  # model id -> the verdict and detail of a model left out


@dataclass(frozen=True, slots=True, kw_only=True)
class Attempt:
    """One failed assignment of the task: which decision, slot and model, and how it failed."""

    decision_id: str
    slot_id: str
    model: str
    failure: Failure


@dataclass(frozen=True, slots=True, kw_only=True)
class Escalation:
    """A task between attempts: the attempt it is on (2 after the first failure), the failures so
    far, and what the next assignment must respect (a tier floor, models excluded)."""

    attempt: int
    escalations: int = 0
    retries: int = 0
    floor_tier: int | None = None  # the task needs a model of at least this tier
    excluded: frozenset[str] = frozenset()
    failed: tuple[Attempt, ...] = ()  # oldest first

    @property
    def previous_decision_id(self) -> str:
        return self.failed[-1].decision_id

    def reported_by(self, slot_id: str) -> bool:
        """True if a failed attempt ran on this slot: a second report from it is a duplicate."""
        return any(a.slot_id == slot_id for a in self.failed)

    def to_json(self) -> dict[str, Any]:
        return {
            "attempt": self.attempt,
            "escalations": self.escalations,
            "retries": self.retries,
            "floor_tier": self.floor_tier,
            "excluded": sorted(self.excluded),
            "failed": [[a.decision_id, a.slot_id, a.model, a.failure.value] for a in self.failed],
        }

    @staticmethod
    def from_json(doc: Mapping[str, Any]) -> Escalation:
        return Escalation(
            attempt=int(doc["attempt"]),
            escalations=int(doc.get("escalations", 0)),
            retries=int(doc.get("retries", 0)),
            floor_tier=None if doc.get("floor_tier") is None else int(doc["floor_tier"]),
            excluded=frozenset(doc.get("excluded") or ()),
            failed=tuple(
                Attempt(decision_id=d, slot_id=s, model=m, failure=Failure(f)) for d, s, m, f in doc.get("failed") or ()
            ),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Limits:
    max_escalations: int = DEFAULT_MAX_ESCALATIONS
    max_retries: int = DEFAULT_MAX_RETRIES


@dataclass(frozen=True, slots=True, kw_only=True)
class NextStep:
    """What follows a failure: `code` ESCALATED or RETRIED with the state the task waits in, or
    GAVE_UP (state None); `reason` is the decision's sentence."""

    code: ReasonCode
    state: Escalation | None
    reason: str


def after_failure(
    state: Escalation | None, failed: Attempt, *, tier: int, limits: Limits, detail: str | None = None
) -> NextStep:
    """The next step for a task whose assignment `failed` (on a model of `tier`)."""
    base = state or Escalation(attempt=1)
    chain = replace(base, attempt=base.attempt + 1, failed=(*base.failed, failed))
    what = f"{failed.model} on {failed.slot_id} failed it ({failed.failure.value}{_quoted(detail)})"
    if failed.failure is Failure.ABANDONED:
        return NextStep(
            code=ReasonCode.GAVE_UP, state=None, reason=f"Failed: {what}; an abandoned task is not retried."
        )
    if failed.failure is Failure.TRANSIENT:
        if base.retries >= limits.max_retries:
            return _gave_up(what, f"{base.retries} retries, the most allowed (ROUTER_MAX_RETRIES)")
        retried = replace(chain, retries=base.retries + 1)
        return NextStep(
            code=ReasonCode.RETRIED,
            state=retried,
            reason=f"Retried: {what}; waits again at the same rules (attempt {retried.attempt}, retry "
            f"{retried.retries} of {limits.max_retries}).",
        )
    if base.escalations >= limits.max_escalations:
        return _gave_up(what, f"{base.escalations} escalations, the most allowed (ROUTER_MAX_ESCALATIONS)")
    floor = max(tier + 1, base.floor_tier or 0)
    escalated = replace(
        chain, escalations=base.escalations + 1, floor_tier=floor, excluded=base.excluded | {failed.model}
    )
    return NextStep(
        code=ReasonCode.ESCALATED,
        state=escalated,
        reason=f"Escalated: {what}; waits for tier {floor} or above, {', '.join(sorted(escalated.excluded))} "
        f"excluded (attempt {escalated.attempt}, escalation {escalated.escalations} of {limits.max_escalations}).",
    )


def no_higher_tier(step: NextStep) -> NextStep:
    """An escalation no rateable model can serve: the task is given up instead."""
    assert step.state is not None
    sentence = step.reason.removeprefix("Escalated: ").split("; waits for", 1)[0]
    return NextStep(
        code=ReasonCode.GAVE_UP,
        state=None,
        reason=f"Failed: {sentence}; no model of tier {step.state.floor_tier} or above meets its requirements.",
    )


def _gave_up(what: str, cap: str) -> NextStep:
    return NextStep(code=ReasonCode.GAVE_UP, state=None, reason=f"Failed: {what}; given up after {cap}.")


def _quoted(detail: str | None) -> str:
    return f': "{detail}"' if detail else ""


def narrow(rateable: frozenset[str], state: Escalation, catalog: Catalog) -> tuple[frozenset[str], Notes]:
    """The models an escalated task may still use, and why each other rateable one is left out."""
    kept: set[str] = set()
    notes: Notes = {}
    for model_id in rateable:
        tier = catalog.models[model_id].tier
        if model_id in state.excluded:
            notes[model_id] = (Verdict.INCAPABLE, "failed this task (capability): excluded")
        elif state.floor_tier is not None and tier < state.floor_tier:
            notes[model_id] = (
                Verdict.INCAPABLE,
                f"tier {tier} < {state.floor_tier}, needed after a capability failure",
            )
        else:
            kept.add(model_id)
    return frozenset(kept), notes


def narrow_assessment(
    a: Assessment, escalation: Escalation | None, gate: QualityGate, catalog: Catalog
) -> tuple[Assessment, Notes]:
    """The assessment of a task an escalation or the quality gate keeps from some rateable
    models: those left out (with why), and the tier and premium rules judged on what remains, so
    a task escalated past every non-premium tier is premium-only (min_tier 3, never blocked)."""
    task = a.task
    notes: Notes = {}
    rateable = a.rateable
    if escalation is not None:
        rateable, notes = narrow(rateable, escalation, catalog)
    if rateable:
        kept_out = gate.kept_out(task.task_id, task.layer, rateable)
        rateable = rateable.difference(kept_out)
        notes.update(kept_out)
    if not notes:
        return a, notes
    min_tier = min((catalog.models[m].tier for m in rateable), default=None)
    t = a.thresholds
    narrowed = Assessment(
        task=task,
        rateable=rateable,
        min_tier=min_tier,
        thresholds=t,
        override=a.override,
        premium_blocked=is_premium_blocked(task, ev=t.ev, p50=t.p50, min_tier=min_tier),
        unreachable=a.unreachable,
    )
    return narrowed, notes


def noted_alternatives(alternatives: tuple[Alternative, ...], notes: Notes) -> tuple[Alternative, ...]:
    """The alternatives with the verdict and reason of each model an escalation or the gate left out
    (route() saw them only as not rateable)."""
    return tuple(_noted(alt, notes) for alt in alternatives)


def _noted(alt: Alternative, notes: Notes) -> Alternative:
    note = notes.get(alt.model)
    if note is None or alt.verdict is not Verdict.INCAPABLE:
        return alt
    verdict, detail = note
    return Alternative(
        model=alt.model,
        account=alt.account,
        tier=alt.tier,
        verdict=verdict,
        slot_id=alt.slot_id,
        detail=detail,
        count=alt.count,
        slot_ids=alt.slot_ids,
    )

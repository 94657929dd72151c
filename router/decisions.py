"""A decision built from the policy's answer: its record fields and the estimated cost of the
assignment (PROTOCOL.md's decision record; the wire form is `Decision.to_record`)."""

from __future__ import annotations

from router import POLICY_VERSION
from router.catalog import Catalog
from router.policy import Assessment, Routed
from router.values import Decision, Outcome, Task


def build_decision(
    assessment: Assessment,
    routed: Routed,
    *,
    decision_id: str,
    event_id: str | None,
    now_ms: int,
    dry_run: bool,
    catalog: Catalog,
    attempt: int = 1,
    previous_decision_id: str | None = None,
) -> Decision:
    return Decision(
        decision_id=decision_id,
        task=assessment.task,
        outcome=routed.outcome,
        reason_code=routed.reason_code,
        reason=routed.reason,
        thresholds=assessment.thresholds,
        decided_at_ms=now_ms,
        chosen=routed.chosen,
        alternatives=routed.alternatives,
        override=assessment.override,
        min_tier=assessment.min_tier,
        est_cost_usd=estimated_cost(catalog, assessment.task, routed),
        event_id=event_id,
        dry_run=dry_run,
        policy_version=POLICY_VERSION,
        attempt=attempt,
        previous_decision_id=previous_decision_id,
    )


def estimated_cost(catalog: Catalog, task: Task, routed: Routed) -> float | None:
    """The chosen model's price for the task's estimated tokens (the layer's estimate for any the
    task does not give); None unless assigned."""
    if routed.outcome is not Outcome.ASSIGNED or routed.chosen is None:
        return None
    estimate = catalog.estimate(task.layer)
    tokens_in = task.est_input_tokens if task.est_input_tokens is not None else estimate.input_tokens
    tokens_out = task.est_output_tokens if task.est_output_tokens is not None else estimate.output_tokens
    return catalog.models[routed.chosen.model].cost_usd(input_tokens=tokens_in, output_tokens=tokens_out)

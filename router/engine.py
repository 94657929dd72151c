"""The router's state machine: apply input events to the ledger, then run the matching round.

Everything here is pure: time comes in as `now_ms`, and the output is a list of effects (decisions,
cancellations, usage reports) plus the ledger changes the worker persists with them.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from typing import Any

from router.budgets import Budget, BudgetBook
from router.catalog import Catalog
from router.config import RouterConfig
from router.decisions import build_decision
from router.escalation import (
    Attempt,
    Escalation,
    Limits,
    after_failure,
    narrow_assessment,
    no_higher_tier,
    noted_alternatives,
)
from router.ev import EVResolver, EVWindow, Scorer
from router.policy import Assessment, Barred, Routed, assess, route
from router.quality import QualityGate
from router.queue_place import FleetRates, places, queue_place, usable_models
from router.service_rates import SCALE_DRIFT, ServiceRates
from router.slots import PoolKey, SlotLedger, SlotRecord, SlotState
from router.snapshot import LedgerChanges, WaitingChanges, waiting_from_json, waiting_to_json
from router.values import (
    Cancelled,
    Decision,
    Effect,
    Event,
    Failure,
    Outcome,
    QueuePlace,
    QuotaUtilisation,
    ReasonCode,
    SlotFree,
    SlotGone,
    SlotHeartbeat,
    Task,
    TaskCancelled,
    TaskPending,
    TaskResult,
    TaskStarted,
    Usage,
    UsageReported,
    Verdict,
)
from router.waiting import WaitingIndex, WaitingTask


class Router:
    def __init__(
        self,
        catalog: Catalog,
        *,
        config: RouterConfig | None = None,
        scorer: Scorer | None = None,
        budgets: Iterable[Budget] = (),
    ):
        self.catalog = catalog
        self.config = config or RouterConfig()
        self.ledger = SlotLedger(
            stale_after_ms=int(self.config.stale_after_s * 1000),
            assignment_timeout_ms=int(self.config.assignment_timeout_s * 1000),
        )
        self.waiting = WaitingIndex(
            tiers={m.model_id: m.tier for m in catalog.models.values()},
            sole_tier_first=self.config.sole_tier_first,
            points_per_scale=self.config.ageing_points_per_service_time,
            ev_points=self.config.ev_rank_points,
        )
        self.ev_window = EVWindow(size=self.config.ev_window)
        self.rates = ServiceRates()
        self._scales: dict[frozenset[str], float] = {}  # the time scale each set of models' tasks wait by
        self.resolver = EVResolver(scorer=scorer)
        self.assigned: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self.budgets = BudgetBook(budgets)
        self.premium_models = frozenset(m.model_id for m in catalog.models.values() if m.is_premium)
        self._changes = LedgerChanges()
        self._batch_id = "0-0"
        self._batch_seq = 0
        self._touched: dict[str, str] = {}  # task or slot id -> id of the event that touched it this batch
        self._new_waiting: list[str] = []
        # restored tasks no model of the current catalogue can serve: decided at the next round
        self._restored_unroutable: dict[str, WaitingTask] = {}
        self._waiting_changes = WaitingChanges()
        # tasks between attempts after a failed outcome (router/escalation.py), and the quality gate
        self.escalations: dict[str, Escalation] = {}
        self.gate = QualityGate(settings=self.config.gate_settings())
        self.outcome_limits = Limits(max_escalations=self.config.max_escalations, max_retries=self.config.max_retries)
        # task id -> why the latest assessment left a rateable model out (escalation, gate)
        self._notes: dict[str, dict[str, tuple[Verdict, str]]] = {}

    # -- batches -----------------------------------------------------------------------------

    def begin_batch(self, batch_id: str) -> None:
        """Decision ids are `<batch id>.<n>`: unique as long as batch ids are (stream entry ids are)."""
        self._batch_id = batch_id
        self._batch_seq = 0
        self._touched = {}
        self._new_waiting = []

    def drain_changes(self) -> LedgerChanges:
        changes, self._changes = self._changes, LedgerChanges()
        changes.waiting = self._waiting_changes.drain()
        for slot_id in self.ledger.dirty:
            changes.slots[slot_id] = self.ledger.slots[slot_id].to_json()
        self.ledger.dirty.clear()
        changes.utilisation = self.ledger.drain_utilisation()
        if self.budgets.dirty:
            changes.budgets = self.budgets.to_json()
            self.budgets.dirty = False
        changes.rates = self.rates.drain()
        changes.quality = self.gate.drain()
        return changes

    # -- events ------------------------------------------------------------------------------

    def apply(self, event: Event, *, event_id: str, now_ms: int) -> list[Effect]:
        match event:
            case TaskPending(task=task):
                self._touched[task.task_id] = event_id
                return self._task_pending(task, event_id=event_id, now_ms=now_ms)
            case TaskCancelled(task_id=task_id):
                return self._task_cancelled(task_id, event_id=event_id, now_ms=now_ms)
            case SlotFree():
                self._touched[event.slot_id] = event_id
                return self._slot_free(event, event_id=event_id, now_ms=now_ms)
            case SlotHeartbeat(slot_id=slot_id):
                self.ledger.heard(slot_id, now_ms)
                return []
            case SlotGone(slot_id=slot_id):
                before = self.ledger.mark_gone(slot_id, now_ms)
                if before is not None and before.held is not None and not before.started:
                    return self._requeue(before, "the slot sent slot.gone before starting it", event_id, now_ms)
                return []
            case TaskStarted(task_id=task_id, slot_id=slot_id):
                self.ledger.mark_started(slot_id, task_id, now_ms)
                return []
            case QuotaUtilisation(model=model, account=account, utilisation=utilisation):
                self.ledger.set_utilisation(account=account, model=model, utilisation=utilisation)
                return []
        raise TypeError(f"unhandled event {event!r}")

    def _task_pending(self, task: Task, *, event_id: str, now_ms: int) -> list[Effect]:
        if task.task_id in self.assigned:
            return []  # an idempotent retry of a task that already has its slot
        if self._restored_unroutable.pop(task.task_id, None) is not None:
            self._waiting_changes.dropped(task.task_id)  # this version replaces the one restored
        known = self.waiting.tasks.get(task.task_id)
        ev = self.resolver.resolve(task, now_s=now_ms / 1000)
        if known is None:
            self.ev_window.add(ev)
            self._changes.ev_added.append(ev)
        rateable, rateable_ids = self.catalog.rateable_with_ids(task.requires)
        if not rateable:
            if known is not None:
                self._drop_waiting(task.task_id)
            return [self._decide(task, ev, event_id=event_id, now_ms=now_ms)]
        min_tier = rateable[0].tier
        if self.gate.blocking:
            rateable_ids, min_tier = self._narrowed_models(task, rateable_ids, min_tier)
        # filed by what may serve it; the EV rules are judged when a slot is offered (the round)
        waiting = WaitingTask(
            task=task,
            ev=ev,
            seq=known.seq if known else self.waiting.next_seq(),
            since_ms=known.since_ms if known else now_ms,
            models=rateable_ids,
            min_tier=min_tier,
            await_decision_id=known.await_decision_id if known else None,
            scale_ms=known.scale_ms if known else self._scale_for(rateable_ids),
            ev_rank=self.ev_window.rank(ev) if self.config.ev_rank_points > 0 else 0.5,
            first_estimate_s=known.first_estimate_s if known else None,
            first_turn_s=known.first_turn_s if known else None,
        )
        self.waiting.add(waiting)
        self._waiting_changes.filed(waiting, new=known is None)
        if known is None:
            self._new_waiting.append(task.task_id)
        return []

    def _task_cancelled(self, task_id: str, *, event_id: str, now_ms: int) -> list[Effect]:
        if self._restored_unroutable.pop(task_id, None) is not None:
            self._waiting_changes.dropped(task_id)
            return [Cancelled(task_id=task_id, event_id=event_id, at_ms=now_ms)]
        if self._drop_waiting(task_id) is None:
            self._mark_held_cancelled(task_id)
            return []  # assigned or unknown: nothing to drop now
        self._end_escalation(task_id)
        return [Cancelled(task_id=task_id, event_id=event_id, at_ms=now_ms)]

    def _mark_held_cancelled(self, task_id: str) -> None:
        """An assigned task the slot has not started: if the assignment lapses, it is dropped, not
        put back to wait (the cancellation would otherwise be undone by the requeue)."""
        ref = self.assigned.get(task_id)
        record = self.ledger.get(ref["slot_id"]) if ref else None
        if record is not None and record.task_id == task_id and record.held is not None:
            record.held["cancelled"] = True
            self.ledger.dirty.add(record.slot_id)

    def _slot_free(self, event: SlotFree, *, event_id: str, now_ms: int) -> list[Effect]:
        current = self.ledger.get(event.slot_id)
        busy = current is not None and current.state is SlotState.BUSY and current.task_id is not None
        effects: list[Effect] = []
        if busy and not self.config.dry_run:  # a shadow's slots answer to the live router: trust them
            assert current is not None
            if event.completed is not None and event.completed.task_id != current.task_id:
                # A late or duplicated slot.free (a producer's retried XADD) reporting an earlier task:
                # the slot has since been given another one, so freeing it would double-book it.
                return self._usage_once(event, None, event_id=event_id, now_ms=now_ms)
        before = self.ledger.mark_free(slot_id=event.slot_id, model=event.model, account=event.account, now_ms=now_ms)
        if before is not None and before.state is SlotState.BUSY and before.task_id is not None:
            self._measured(before.model, now_ms - before.since_ms)
        if event.completed is not None:
            effects += self._usage_once(event, before, event_id=event_id, now_ms=now_ms)
        return effects

    def _usage_once(self, event: SlotFree, before: SlotRecord | None, *, event_id: str, now_ms: int) -> list[Effect]:
        """The usage report (with the outcome's effect), unless this task's usage was reported
        already (a retried XADD): then nothing, and the outcome changes nothing either."""
        assert event.completed is not None
        task_id = event.completed.task_id
        ref = self.assigned.get(task_id)
        current = ref is not None and ref["slot_id"] == event.slot_id
        escalation = self.escalations.get(task_id) if self.escalations else None
        if escalation is not None and not current and escalation.reported_by(event.slot_id):
            return []  # a repeat of an earlier attempt's failure report
        if ref is not None and current:  # another slot's report must not use up this assignment's
            if ref.get("usage_reported"):
                return []
            charge = ref.get("charge")
            if charge is not None and event.completed.cost_usd is not None:
                self.budgets.settle(charge, actual_usd=event.completed.cost_usd)
            ref = self.assigned[task_id] = {**ref, "usage_reported": True}  # a new dict: refs are shared
            self._changes.assigned[task_id] = ref
        held = before.held if before is not None and before.task_id == task_id else None
        attempt = escalation.attempt if escalation is not None else 1
        if not current or held is None or ref is None or before is None or ref["decision_id"] != before.decision_id:
            # not this slot's current assignment of the task: recorded, changes nothing
            mine = ref if current else None
            return [
                self._usage(event, before, mine, event_id=event_id, now_ms=now_ms, effect="ignored", attempt=attempt)
            ]
        effect, follow = self._outcome(event.completed, before, held, attempt, now_ms)
        report = self._usage(event, before, ref, event_id=event_id, now_ms=now_ms, effect=effect, attempt=attempt)
        return [report, *follow]

    def _usage(
        self,
        event: SlotFree,
        before: SlotRecord | None,
        ref: dict[str, Any] | None,
        *,
        event_id: str,
        now_ms: int,
        effect: str,
        attempt: int,
    ) -> UsageReported:
        """The usage effect, tied to the decision of this slot's assignment of the task (`ref`), if any."""
        usage = event.completed
        assert usage is not None
        decision_id = None
        layer = None
        if before is not None and before.task_id == usage.task_id:
            decision_id = before.decision_id
            layer = before.held["task"].get("layer") if before.held else None
        elif ref is not None:
            decision_id = ref.get("decision_id")
        return UsageReported(
            usage=usage,
            slot_id=event.slot_id,
            model=event.model,
            account=event.account,
            decision_id=decision_id,
            event_id=event_id,
            at_ms=now_ms,
            layer=layer,
            outcome_effect=effect if usage.outcome is not None or effect == "ignored" else None,
            attempt=attempt,
        )

    def _measured(self, model: str, service_ms: int) -> None:
        """A slot's turn (assignment to its next slot.free) on `model`; the first measurement ever
        gives every waiting task a time scale (until then the order had no ageing)."""
        first = not self.rates.measured
        self.rates.observe_service(model, service_ms)
        if first and self.rates.measured:
            for waiting in self.waiting.give_scales(self._scale_for):
                self._waiting_changes.filed(waiting)

    def _scale_for(self, models: frozenset[str]) -> float | None:
        """The matching order's time scale for a task these models may serve: their mean service
        time, or while none of them has been measured the mean of the models that have. One scale
        per set of models, kept until the measured mean drifts past SCALE_DRIFT either way: tasks
        of one set then all wait by the same scale, so equal tasks keep their arrival order (a scale
        moving a little with every completion would let a later task overtake an earlier equal one);
        when it is replaced, the set's waiting tasks are filed again under the new one."""
        measured = self.rates.scale_ms(models)
        if measured is None:
            measured = self.rates.overall_scale_ms()
        if measured is None:
            return None
        held = self._scales.get(models)
        if held is not None and held / SCALE_DRIFT <= measured <= held * SCALE_DRIFT:
            return held
        self._scales[models] = measured
        if held is not None:
            for waiting in self.waiting.rescale(models, measured):
                self._waiting_changes.filed(waiting)
        return measured

    # -- outcomes (PROTOCOL.md v1.1) ---------------------------------------------------------

    def _outcome(
        self, usage: Usage, before: SlotRecord, held: dict[str, Any], attempt: int, now_ms: int
    ) -> tuple[str, list[Effect]]:
        """Act on the outcome of the slot's current assignment (attempt `attempt`): learn from it,
        and after a failure escalate, retry or give the task up. Returns what was done (the usage
        record's `outcome_effect`) and the decision it took, if any."""
        layer = str(held["task"].get("layer") or "unknown")
        if usage.outcome is TaskResult.SUCCEEDED or usage.failure is Failure.CAPABILITY:
            self.gate.record(before.model, layer, succeeded=usage.outcome is TaskResult.SUCCEEDED)
        if usage.outcome is not TaskResult.FAILED or usage.failure is None:
            self._end_escalation(usage.task_id)  # done (or unknown): the chain, if any, is over
            return "none", []
        assert before.decision_id is not None
        failed = Attempt(
            decision_id=before.decision_id, slot_id=before.slot_id, model=before.model, failure=usage.failure
        )
        model = self.catalog.models.get(before.model)
        step = after_failure(
            self.escalations.get(usage.task_id),
            failed,
            tier=model.tier if model is not None else 0,
            limits=self.outcome_limits,
            detail=usage.detail,
        )
        waiting = waiting_from_json(held)
        waiting.await_decision_id = None
        trigger = self._touched.get(before.slot_id)
        if step.state is not None:
            self._set_escalation(usage.task_id, step.state)
            assessment = self._assess(waiting.task, waiting.ev)
            if assessment.min_tier is not None:
                return step.code.value, [self._wait_again(waiting, assessment, step.code, step.reason, now_ms, trigger)]
            step = no_higher_tier(step)
        self._end_escalation(usage.task_id)
        self._notes.pop(usage.task_id, None)
        gave_up = Routed(
            outcome=Outcome.FAILED, reason_code=step.code, reason=step.reason, chosen=None, alternatives=()
        )
        decision = self._decision(
            self._assess(waiting.task, waiting.ev),
            gave_up,
            event_id=trigger,
            now_ms=now_ms,
            attempt=attempt,
            previous_decision_id=failed.decision_id,
        )
        return "failed", [decision]

    def _wait_again(
        self,
        waiting: WaitingTask,
        assessment: Assessment,
        code: ReasonCode,
        reason: str,
        now_ms: int,
        event_id: str | None,
    ) -> Decision:
        """File a failed task to wait again, in its old place, under what it may use now."""
        assert assessment.min_tier is not None
        waiting.models, waiting.min_tier = assessment.rateable, assessment.min_tier
        self.waiting.add(waiting)
        routed = self._route(assessment, now_ms)
        again = Routed(
            outcome=Outcome.AWAIT_SLOT, reason_code=code, reason=reason, chosen=None, alternatives=routed.alternatives
        )
        decision = self._decision(assessment, again, event_id=event_id, now_ms=now_ms)
        waiting.await_decision_id = decision.decision_id
        self._waiting_changes.filed(waiting)
        return decision

    def _set_escalation(self, task_id: str, state: Escalation) -> None:
        self.escalations[task_id] = state
        self._changes.escalations[task_id] = state.to_json()

    def _end_escalation(self, task_id: str) -> None:
        if self.escalations.pop(task_id, None) is not None:
            self._changes.escalations[task_id] = None

    # -- lapsed assignments ------------------------------------------------------------------

    def expire_assignments(self, *, now_ms: int) -> list[Effect]:
        """Return to waiting the tasks whose slot went silent before starting them."""
        lapsed = [self.ledger.slots[slot_id] for slot_id in sorted(self.ledger.lapsed(now_ms))]
        decisions: list[Effect] = []
        for record in lapsed:
            silent_s = (now_ms - record.last_heard_ms) // 1000
            before = self.ledger.mark_gone(record.slot_id, now_ms)
            assert before is not None
            why = f"the slot was not heard from for {silent_s}s and never reported starting it"
            decisions += self._requeue(before, why, None, now_ms)
        return decisions

    def _requeue(self, before: SlotRecord, why: str, event_id: str | None, now_ms: int) -> list[Effect]:
        """The lapsed assignment's task waits again in its old place (or is dropped if cancelled)."""
        assert before.held is not None and before.task_id is not None
        ref = self.assigned.pop(before.task_id, None)
        if ref is not None and ref.get("charge") is not None and not ref.get("usage_reported"):
            self.budgets.refund(ref["charge"])
        self._changes.assigned[before.task_id] = None
        if before.held.get("cancelled"):
            return [Cancelled(task_id=before.task_id, event_id=event_id or self._batch_id, at_ms=now_ms)]
        waiting = waiting_from_json(before.held)
        waiting.await_decision_id = None
        assessment = self._assess(waiting.task, waiting.ev)
        if assessment.min_tier is None:  # the catalogue changed since it was assigned
            return [self._decision(assessment, self._route(assessment, now_ms), event_id=event_id, now_ms=now_ms)]
        waiting.models, waiting.min_tier = assessment.rateable, assessment.min_tier
        if waiting.scale_ms is None:
            waiting.scale_ms = self._scale_for(waiting.models)
        self.waiting.add(waiting)
        routed = self._route(assessment, now_ms)
        reason = f"Assignment to {before.slot_id} ({before.model}) lapsed: {why}; the task waits again."
        lapsed = Routed(
            outcome=Outcome.AWAIT_SLOT,
            reason_code=ReasonCode.ASSIGNMENT_LAPSED,
            reason=reason,
            chosen=None,
            alternatives=routed.alternatives,
        )
        decision = self._decision(assessment, lapsed, event_id=event_id, now_ms=now_ms)
        decision.queue_place = self._place_of(waiting, now_ms)
        waiting.await_decision_id = decision.decision_id
        self._waiting_changes.filed(waiting)
        return [decision]

    # -- the matching round ------------------------------------------------------------------

    def match(self, *, now_ms: int) -> list[Decision]:
        """Place waiting tasks on free slots in matching order; announce tasks that start waiting."""
        decisions = self._decide_restored_unroutable(now_ms)
        decisions += self._assign_round(now_ms)
        for task_id in self._new_waiting:
            waiting = self.waiting.tasks.get(task_id)
            if waiting is not None and waiting.await_decision_id is None:
                decisions.append(self._announce_wait(waiting, now_ms))
        self._new_waiting = []
        return decisions

    def _decide_restored_unroutable(self, now_ms: int) -> list[Decision]:
        decisions = []
        for waiting in self._restored_unroutable.values():
            self._waiting_changes.dropped(waiting.task.task_id)
            decisions.append(self._decide(waiting.task, waiting.ev, event_id=None, now_ms=now_ms))
        self._restored_unroutable = {}
        return decisions

    def _assign_round(self, now_ms: int) -> list[Decision]:
        """Open pools first; then the pools only soft spent budgets cover, for override tasks alone
        (taken after the first pass: an assignment in it may have spent a budget)."""
        free_pools = set(self.ledger.pools_with_live_free(now_ms))
        if not self.budgets:
            return self._place(free_pools, now_ms, overrides_only=False)
        spent = self.budgets.exhausted_pools(free_pools, now_ms)
        decisions = self._place(free_pools - spent.keys(), now_ms, overrides_only=False)
        spent = self.budgets.exhausted_pools(self.ledger.pools_with_live_free(now_ms), now_ms)
        soft = {pool for pool, hard in spent.items() if not hard}
        if soft:
            decisions += self._place(soft, now_ms, overrides_only=True)
        return decisions

    def _place(self, free_pools: set[PoolKey], now_ms: int, *, overrides_only: bool) -> list[Decision]:
        decisions: list[Decision] = []
        reindexed: set[str] = set()
        while free_pools and len(self.waiting):
            p50, p90 = self.ev_window.p50, self.ev_window.p90
            free_models = {model for model, _ in free_pools}
            waiting = self.waiting.best_placeable(
                free_models=free_models,
                premium_models=self.premium_models,
                p50=p50,
                p90=p90,
                overrides_only=overrides_only,
            )
            if waiting is None:
                break
            assessment = self._assess(waiting.task, waiting.ev)
            routed = self._route(assessment, now_ms)
            if routed.chosen is None:
                # The index and route() disagree (state from another catalogue, or a bug): file the
                # task again under what it may use now, once; never loop or stop routing over it.
                if waiting.task.task_id in reindexed or not self._reindex(waiting, assessment):
                    break
                reindexed.add(waiting.task.task_id)
                continue
            decision = self._decision(
                assessment, routed, event_id=self._trigger(waiting.task.task_id, routed), now_ms=now_ms
            )
            self._commit_assignment(waiting, decision, now_ms)
            decisions.append(decision)
            chosen_pool: PoolKey = (routed.chosen.model, routed.chosen.account)
            if self.ledger.first_live_free(chosen_pool, now_ms) is None:
                free_pools.discard(chosen_pool)
            if self.budgets:
                self._drop_spent(free_pools, now_ms, overrides_only=overrides_only)
        return decisions

    def _drop_spent(self, free_pools: set[PoolKey], now_ms: int, *, overrides_only: bool) -> None:
        """The assignment just booked may have spent a budget over several pools (an account-wide one):
        those leave the pass, which would otherwise pick tasks route() then bars. The override pass keeps
        the pools only soft budgets cover: that is what it is for."""
        for pool, hard in self.budgets.exhausted_pools(free_pools, now_ms).items():
            if hard or not overrides_only:
                free_pools.discard(pool)

    def _reindex(self, waiting: WaitingTask, assessment: Assessment) -> bool:
        """File a waiting task again under the models it may use now; False if nothing changed."""
        if assessment.min_tier is None or assessment.rateable == waiting.models:
            return False
        self.waiting.remove(waiting.task.task_id)
        waiting.models, waiting.min_tier = assessment.rateable, assessment.min_tier
        self.waiting.add(waiting)
        self._waiting_changes.filed(waiting)
        return True

    def _commit_assignment(self, waiting: WaitingTask, decision: Decision, now_ms: int) -> None:
        chosen = decision.chosen
        assert chosen is not None
        task_id = waiting.task.task_id
        self._learn_eta(waiting, now_ms)
        self._drop_waiting(task_id)
        self.ledger.mark_busy(
            chosen.slot_id,
            task_id=task_id,
            decision_id=decision.decision_id,
            now_ms=now_ms,
            held=waiting_to_json(waiting),
        )
        ref: dict[str, Any] = {"slot_id": chosen.slot_id, "decision_id": decision.decision_id, "at_ms": now_ms}
        if self.budgets:  # a dry run books too: its ledger acts as if its decisions had happened
            charge = self.budgets.book(
                account=chosen.account, model=chosen.model, usd=decision.est_cost_usd or 0.0, now_ms=now_ms
            )
            if charge is not None:
                ref["charge"] = charge
        self._remember_assigned(task_id, ref)

    def _learn_eta(self, waiting: WaitingTask, now_ms: int) -> None:
        """An assigned task's real wait against its first estimate teaches the ETA correction;
        only tasks that waited at least one slot turn: one served at the next free slot says how
        the slots happened to be placed, not how far the queue estimate is off."""
        estimate, turn = waiting.first_estimate_s, waiting.first_turn_s
        waited_s = (now_ms - waiting.since_ms) / 1000
        if estimate is not None and turn is not None and waited_s >= turn:
            self.rates.observe_wait(estimated_s=estimate, waited_s=waited_s)

    def _announce_wait(self, waiting: WaitingTask, now_ms: int) -> Decision:
        task = waiting.task
        decision = self._decide(task, waiting.ev, event_id=self._touched.get(task.task_id), now_ms=now_ms)
        if decision.chosen is not None:
            # route() found a slot the round did not offer (the index out of step, or a pool a
            # budget kept from this round): book it, so a published assignment always holds its slot
            self._commit_assignment(waiting, decision, now_ms)
            return decision
        decision.queue_place = self._place_of(waiting, now_ms)
        waiting.await_decision_id = decision.decision_id
        self._waiting_changes.filed(waiting)
        return decision

    # -- queue position and ETA --------------------------------------------------------------

    def queue_place(self, task_id: str, now_ms: int) -> QueuePlace | None:
        """Where a waiting task stands now (None if it is not waiting): O(groups x log n)."""
        waiting = self.waiting.tasks.get(task_id)
        return None if waiting is None else self._queue_place(waiting, now_ms)[0]

    def queue_places(self, now_ms: int) -> dict[str, QueuePlace]:
        """Every waiting task's place, by task id (one sort of the queue: for tables, not per event)."""
        fleet = FleetRates(self.rates, self.ledger, now_ms)
        p50, p90 = self.ev_window.p50, self.ev_window.p90
        return places(
            self.waiting, fleet, premium_models=self.premium_models, p50=p50, p90=p90, correction=self.rates.correction
        )

    def _queue_place(self, waiting: WaitingTask, now_ms: int) -> tuple[QueuePlace, float | None, float | None]:
        usable = usable_models(waiting, self.premium_models, self.ev_window.p50)
        fleet = FleetRates(self.rates, self.ledger, now_ms)
        return queue_place(
            self.waiting, fleet, waiting, usable=usable, p90=self.ev_window.p90, correction=self.rates.correction
        )

    def _place_of(self, waiting: WaitingTask, now_ms: int) -> QueuePlace:
        """The place an await decision reports; the first one's estimate is kept to learn from."""
        place, estimate, turn = self._queue_place(waiting, now_ms)
        if waiting.first_estimate_s is None:
            waiting.first_estimate_s, waiting.first_turn_s = estimate, turn
        return place

    # -- helpers -----------------------------------------------------------------------------

    def _assess(self, task: Task, ev: float) -> Assessment:
        a = assess(task, self.catalog, ev=ev, p50=self.ev_window.p50, p90=self.ev_window.p90)
        if (self.escalations or self.gate.blocking) and a.rateable:  # both empty on the common path
            a = self._narrowed(a)
        return a

    def _narrowed(self, a: Assessment) -> Assessment:
        narrowed, notes = narrow_assessment(a, self.escalations.get(a.task.task_id), self.gate, self.catalog)
        if notes:
            self._notes[a.task.task_id] = notes
        else:
            self._notes.pop(a.task.task_id, None)
        return narrowed

    def _narrowed_models(self, task: Task, rateable_ids: frozenset[str], min_tier: int) -> tuple[frozenset[str], int]:
        """The models the waiting index files a task under, once the quality gate has had its say."""
        kept_out = self.gate.kept_out(task.task_id, task.layer, rateable_ids)
        if not kept_out:
            return rateable_ids, min_tier
        kept = rateable_ids.difference(kept_out)
        return kept, min(self.catalog.models[m].tier for m in kept)

    def _trigger(self, task_id: str, routed: Routed) -> str | None:
        slot_event = self._touched.get(routed.chosen.slot_id) if routed.chosen else None
        return slot_event or self._touched.get(task_id) or self._batch_id

    def _decide(self, task: Task, ev: float, *, event_id: str | None, now_ms: int) -> Decision:
        """Assess and route a task now, and decide what route() says."""
        assessment = self._assess(task, ev)
        return self._decision(assessment, self._route(assessment, now_ms), event_id=event_id, now_ms=now_ms)

    def _route(self, assessment: Assessment, now_ms: int) -> Routed:
        routed = route(assessment, self.catalog, self.ledger, now_ms=now_ms, barred=self._barred(assessment, now_ms))
        if self._notes:
            notes = self._notes.pop(assessment.task.task_id, None)
            if notes:
                routed.alternatives = noted_alternatives(routed.alternatives, notes)
        return routed

    def _barred(self, assessment: Assessment, now_ms: int) -> Barred | None:
        """The pools a spent budget keeps this task off (a soft one lets override tasks through)."""
        if not self.budgets:
            return None
        barred: dict[PoolKey, tuple[Verdict, str]] = {}
        for model, account in self.ledger.pools:
            standing = self.budgets.blocking(account, model, override=assessment.override, now_ms=now_ms)
            if standing is not None:
                barred[(model, account)] = (Verdict.BUDGET_EXHAUSTED, standing.detail())
        return barred

    def set_budgets(self, budgets: Iterable[Budget]) -> None:
        """New budgets (the file reloaded): spend under a kept name is kept; the next round uses them."""
        self.budgets.set_budgets(budgets)

    def _decision(
        self,
        assessment: Assessment,
        routed: Routed,
        *,
        event_id: str | None,
        now_ms: int,
        attempt: int | None = None,
        previous_decision_id: str | None = None,
    ) -> Decision:
        self._batch_seq += 1
        prefix = ("dry:" if self.config.dry_run else "") + self.config.id_namespace
        if attempt is None and self.escalations:
            escalation = self.escalations.get(assessment.task.task_id)
            if escalation is not None:
                attempt, previous_decision_id = escalation.attempt, escalation.previous_decision_id
        return build_decision(
            assessment,
            routed,
            decision_id=f"{prefix}{self._batch_id}.{self._batch_seq}",
            event_id=event_id,
            now_ms=now_ms,
            dry_run=self.config.dry_run,
            catalog=self.catalog,
            attempt=attempt or 1,
            previous_decision_id=previous_decision_id,
        )

    def _drop_waiting(self, task_id: str) -> WaitingTask | None:
        dropped = self.waiting.remove(task_id)
        if dropped is not None:
            self._waiting_changes.dropped(task_id)
        return dropped

    def _remember_assigned(self, task_id: str, ref: dict[str, Any]) -> None:
        self.assigned[task_id] = ref
        self._changes.assigned[task_id] = ref
        while len(self.assigned) > self.config.remember_assigned:
            oldest, _ = self.assigned.popitem(last=False)
            self._changes.assigned[oldest] = None
            if self.escalations:
                self._end_escalation(oldest)

    # -- restart -----------------------------------------------------------------------------

    def restore(
        self,
        *,
        slots: list[dict[str, Any]],
        waiting: list[dict[str, Any]],
        assigned: dict[str, dict[str, Any]],
        ev_values: list[float],
        utilisation: dict[str, float],
        budgets: dict[str, Any] | None = None,
        rates: dict[str, dict[str, Any]] | None = None,
        escalations: dict[str, dict[str, Any]] | None = None,
        quality: dict[str, str] | None = None,
    ) -> None:
        """Rebuild the in-memory ledger from its snapshot (ARCHITECTURE.md invariant 2)."""
        self.budgets.restore(budgets or {})
        self.rates.restore(rates or {})
        for task_id, doc in (escalations or {}).items():
            self.escalations[task_id] = Escalation.from_json(doc)
        self.gate.restore(quality or {})
        for record in self.ledger.restore(slots, utilisation):
            if record.held is not None:  # a held task keeps its arrival place if it ever waits again
                self.waiting.note_seq(int(record.held["seq"]))
        for doc in sorted(waiting, key=lambda d: d["seq"]):
            self._restore_waiting(waiting_from_json(doc))
        for task_id, ref in sorted(assigned.items(), key=lambda kv: kv[1].get("at_ms", 0)):
            self.assigned[task_id] = ref
        for value in ev_values[-self.config.ev_window :]:
            self.ev_window.add(value)

    def _restore_waiting(self, waiting: WaitingTask) -> None:
        """File a restored task under what the current catalogue says it may use (the catalogue may
        have changed across the restart); one no model can serve any more is decided at next match."""
        rateable, rateable_ids = self.catalog.rateable_with_ids(waiting.task.requires)
        if not rateable:
            self._restored_unroutable[waiting.task.task_id] = waiting
            return
        waiting.models = rateable_ids
        waiting.min_tier = rateable[0].tier
        if waiting.scale_ms is None:  # a snapshot written before anything was measured
            waiting.scale_ms = self._scale_for(rateable_ids)
        else:  # the scale its set's tasks were waiting by
            self._scales.setdefault(rateable_ids, waiting.scale_ms)
        if self.escalations or self.gate.blocking:
            narrowed = self._assess(waiting.task, waiting.ev)
            self._notes.pop(waiting.task.task_id, None)
            if narrowed.min_tier is not None:  # else the escalation's models left the catalogue: keep all
                waiting.models, waiting.min_tier = narrowed.rateable, narrowed.min_tier
        self.waiting.add(waiting)

    def stats(self, now_ms: int) -> dict[str, Any]:
        counts = self.ledger.counts()
        stale = sum(self.ledger.stale_free_count(key, now_ms) for key in self.ledger.pools)
        return {
            "waiting": len(self.waiting),
            "slots": counts,
            "stale_free": stale,
            "p50": self.ev_window.p50,
            "p90": self.ev_window.p90,
        }


__all__ = [
    "Cancelled",
    "Effect",
    "LedgerChanges",
    "Router",
    "RouterConfig",
    "SlotState",
    "UsageReported",
]

"""POLICY.md "One decision", steps 1-8, and the explanation, on plain values (no Redis)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from router import policy
from router.catalog import Catalog, Model
from router.policy import Assessment, Routed, assess, is_override, is_premium_blocked, route
from router.slots import SlotLedger
from router.values import Alternative, Outcome, ReasonCode, Task, Verdict

NOW = 1_000_000_000
STALE_MS = 90_000


def task(priority: int = 50, requires: Mapping[str, int] | None = None, **kw: Any) -> Task:
    return Task(task_id=kw.pop("task_id", "t1"), priority=priority, requires=dict(requires or {}), **kw)


def ledger(*free: tuple[str, str] | tuple[str, str, str], stale_after_ms: int = STALE_MS) -> SlotLedger:
    """A ledger whose slots are all free and just heard: (slot_id, model[, account])."""
    led = SlotLedger(stale_after_ms=stale_after_ms)
    for spec in free:
        slot_id, model = spec[0], spec[1]
        account = spec[2] if len(spec) == 3 else "default"
        led.mark_free(slot_id=slot_id, model=model, account=account, now_ms=NOW)
    return led


def busy(led: SlotLedger, slot_id: str, model: str, account: str = "default") -> None:
    led.mark_free(slot_id=slot_id, model=model, account=account, now_ms=NOW)
    led.mark_busy(slot_id, task_id=f"other-{slot_id}", decision_id=f"d-{slot_id}", now_ms=NOW)


def gone(led: SlotLedger, slot_id: str, model: str, account: str = "default") -> None:
    led.mark_free(slot_id=slot_id, model=model, account=account, now_ms=NOW)
    led.mark_gone(slot_id, NOW)


def decide(
    t: Task,
    catalog: Catalog,
    led: SlotLedger,
    *,
    ev: float | None = None,
    p50: float | None = None,
    p90: float | None = None,
    now_ms: int = NOW,
) -> tuple[Assessment, Routed]:
    a = assess(t, catalog, ev=t.priority / 100 if ev is None else ev, p50=p50, p90=p90)
    return a, route(a, catalog, led, now_ms=now_ms)


def by_slot(routed: Routed) -> dict[str, Alternative]:
    out = {}
    for alt in routed.alternatives:
        assert alt.count == 1, alt
        assert alt.slot_id is not None
        out[alt.slot_id] = alt
    return out


def verdicts(routed: Routed) -> dict[str, Verdict]:
    return {slot_id: alt.verdict for slot_id, alt in by_slot(routed).items()}


# -- step 1: rateable models ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("requires", "expected"),
    [
        ({}, ["glm", "haiku", "minimax", "codex", "sonnet", "gpt-5", "opus"]),
        ({"reasoning": 5}, ["glm", "codex", "sonnet", "gpt-5", "opus"]),
        ({"reasoning": 7}, ["codex", "sonnet", "gpt-5", "opus"]),
        ({"reasoning": 7, "writing": 8}, ["sonnet", "gpt-5", "opus"]),
        ({"coding": 10}, ["opus"]),
        ({"reasoning": 10}, ["gpt-5"]),
        ({"telepathy": 0}, ["glm", "haiku", "minimax", "codex", "sonnet", "gpt-5", "opus"]),  # lacking counts as 0
        ({"telepathy": 1}, []),
        ({"coding": 10, "reasoning": 10}, []),
    ],
)
def test_step1_rateable_models_cheapest_tier_first(
    catalog: Catalog, requires: dict[str, int], expected: list[str]
) -> None:
    assert [m.model_id for m in catalog.rateable(requires)] == expected
    models, ids = catalog.rateable_with_ids(requires)
    assert models == catalog.rateable(requires)
    assert ids == catalog.rateable_ids(requires) == frozenset(expected)


def test_step1_a_capability_the_model_does_not_list_counts_as_zero() -> None:
    m = Model(
        model_id="x", tier=1, provider="p", capabilities={"coding": 3}, input_usd_per_mtok=1, output_usd_per_mtok=1
    )
    assert m.meets({"coding": 3, "writing": 0})
    assert not m.meets({"writing": 1})
    assert m.shortfalls({"coding": 4, "writing": 2}) == {"coding": (4, 3), "writing": (2, 0)}


def test_step1_unroutable_names_the_capability_no_model_reaches(catalog: Catalog) -> None:
    t = task(requires={"coding": 5, "telepathy": 2})
    a, routed = decide(t, catalog, ledger(("h1", "haiku")))
    assert a.rateable == frozenset()
    assert a.unreachable == {"telepathy": 0}
    assert routed.outcome is Outcome.UNROUTABLE
    assert routed.reason_code is ReasonCode.NO_CAPABLE_MODEL
    assert routed.chosen is None
    assert "telepathy 2 (best 0)" in routed.reason
    assert "coding" not in routed.reason


def test_step1_unroutable_gives_the_best_level_on_offer(catalog: Catalog) -> None:
    a, routed = decide(task(requires={"safety": 10}), catalog, ledger())
    assert a.unreachable == {"safety": 9}
    assert "safety 10 (best 9)" in routed.reason


def test_step1_unroutable_when_no_single_model_meets_all_together(catalog: Catalog) -> None:
    # opus has coding 10 and gpt-5 reasoning 10, but no model has both
    a, routed = decide(task(requires={"coding": 10, "reasoning": 10}), catalog, ledger(("o1", "opus"), ("g1", "gpt-5")))
    assert a.unreachable == {}
    assert routed.outcome is Outcome.UNROUTABLE
    assert "no single model meets all requirements together" in routed.reason
    assert "coding 10" in routed.reason and "reasoning 10" in routed.reason


def test_step1_unroutable_lists_every_slot_as_incapable_with_its_shortfall(catalog: Catalog) -> None:
    led = ledger(("h1", "haiku"), ("o1", "opus"))
    busy(led, "s1", "sonnet")
    gone(led, "g1", "gpt-5")
    _, routed = decide(task(requires={"coding": 10, "reasoning": 10}), catalog, led)
    alts = by_slot(routed)
    assert set(alts) == {"h1", "o1", "s1", "g1"}
    assert {a.verdict for a in alts.values()} == {Verdict.INCAPABLE}
    assert alts["o1"].detail == "reasoning 9 < 10"
    assert alts["g1"].detail == "coding 9 < 10"
    assert alts["h1"].detail == "coding 5 < 10, reasoning 4 < 10"


# -- step 2: min_tier ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("requires", "min_tier"),
    [
        ({}, 1),
        ({"reasoning": 5}, 1),
        ({"reasoning": 7}, 2),
        ({"coding": 10}, 3),
        ({"reasoning": 10}, 3),
        ({"x": 1}, None),
    ],
)
def test_step2_min_tier_is_the_lowest_rateable_tier(
    catalog: Catalog, requires: dict[str, int], min_tier: int | None
) -> None:
    assert assess(task(requires=requires), catalog, ev=0.5, p50=None, p90=None).min_tier == min_tier


# -- step 4: override ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ev", "p90", "quest", "expected"),
    [
        (0.91, 0.9, None, True),  # EV > P90
        (0.9, 0.9, None, False),  # EV == P90 is not above it
        (0.5, 0.9, None, False),
        (0.99, None, None, False),  # no P90 yet: EV cannot override
        (0.1, 0.9, 95, True),  # quest_priority >= 95
        (0.1, 0.9, 100, True),
        (0.1, 0.9, 94, False),
        (0.1, None, 95, True),
    ],
)
def test_step4_override(ev: float, p90: float | None, quest: int | None, expected: bool) -> None:
    assert is_override(task(quest_priority=quest), ev=ev, p90=p90) is expected


# -- step 5: premium block ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ev", "p50", "priority", "min_tier", "expected"),
    [
        (0.4, 0.5, 89, 1, True),  # EV < P50 and priority < 90
        (0.4, 0.5, 89, 2, True),
        (0.4, 0.5, 90, 1, False),  # priority >= 90
        (0.5, 0.5, 10, 1, False),  # EV == P50 is not below it
        (0.6, 0.5, 10, 1, False),
        (0.4, 0.5, 10, 3, False),  # only premium is rateable
        (0.4, None, 10, 1, False),  # no P50 yet
        (0.4, 0.5, 10, None, False),  # unroutable: nothing to block
    ],
)
def test_step5_premium_block(ev: float, p50: float | None, priority: int, min_tier: int | None, expected: bool) -> None:
    assert is_premium_blocked(task(priority=priority), ev=ev, p50=p50, min_tier=min_tier) is expected


def test_step5_blocked_task_takes_cheaper_slot_not_opus(catalog: Catalog) -> None:
    led = ledger(("a-opus", "opus"), ("z-sonnet", "sonnet"))
    a, routed = decide(task(priority=50, ev=0.1), catalog, led, ev=0.1, p50=0.5, p90=0.9)
    assert a.premium_blocked
    assert routed.chosen is not None and routed.chosen.slot_id == "z-sonnet"
    assert verdicts(routed)["a-opus"] is Verdict.PREMIUM_BLOCKED


def test_step5_blocked_task_waits_rather_than_take_the_only_free_opus(catalog: Catalog) -> None:
    led = ledger(("o1", "opus"))
    _, routed = decide(task(priority=50), catalog, led, ev=0.1, p50=0.5, p90=0.9)
    assert routed.outcome is Outcome.AWAIT_SLOT
    assert routed.reason_code is ReasonCode.PREMIUM_BLOCKED
    assert verdicts(routed) == {"o1": Verdict.PREMIUM_BLOCKED}
    assert "EV 0.1 (P50 0.5, P90 0.9), priority 50" in routed.reason


def test_step5_exception_when_only_a_premium_model_is_rateable(catalog: Catalog) -> None:
    led = ledger(("o1", "opus"), ("s1", "sonnet"))
    a, routed = decide(task(priority=10, requires={"coding": 10}), catalog, led, ev=0.01, p50=0.5, p90=0.9)
    assert a.min_tier == 3 and not a.premium_blocked
    assert routed.outcome is Outcome.ASSIGNED
    assert routed.chosen is not None and routed.chosen.slot_id == "o1"
    assert routed.reason_code is ReasonCode.ONLY_PREMIUM_RATEABLE
    assert verdicts(routed)["s1"] is Verdict.INCAPABLE


@pytest.mark.parametrize(("ev", "priority"), [(0.6, 10), (0.1, 90)])
def test_step5_unblocked_low_tier_task_may_take_opus_when_nothing_cheaper_is_free(
    catalog: Catalog, ev: float, priority: int
) -> None:
    led = ledger(("o1", "opus"))
    busy(led, "h1", "haiku")
    _, routed = decide(task(priority=priority), catalog, led, ev=ev, p50=0.5, p90=0.9)
    assert routed.chosen is not None and routed.chosen.model == "opus"
    assert routed.reason_code is ReasonCode.CHEAPEST_CAPABLE
    assert "premium allowed" in routed.reason


# -- step 6: candidates -------------------------------------------------------------------------


def test_step6_busy_and_gone_slots_are_not_candidates(catalog: Catalog) -> None:
    led = ledger(("s1", "sonnet"))
    busy(led, "h1", "haiku")
    gone(led, "h2", "haiku")
    _, routed = decide(task(), catalog, led)
    assert routed.chosen is not None and routed.chosen.slot_id == "s1"
    assert verdicts(routed) == {"s1": Verdict.CHOSEN, "h1": Verdict.BUSY, "h2": Verdict.GONE}


@pytest.mark.parametrize(("silent_ms", "live"), [(0, True), (STALE_MS, True), (STALE_MS + 1, False)])
def test_step6_live_means_heard_within_the_staleness_window(catalog: Catalog, silent_ms: int, live: bool) -> None:
    led = ledger(("h1", "haiku"))
    _, routed = decide(task(), catalog, led, now_ms=NOW + silent_ms)
    if live:
        assert routed.chosen is not None and routed.chosen.slot_id == "h1"
    else:
        assert routed.outcome is Outcome.AWAIT_SLOT
        assert routed.reason_code is ReasonCode.NO_LIVE_SLOT
        assert verdicts(routed) == {"h1": Verdict.STALE}
        assert by_slot(routed)["h1"].detail == f"last heard {(STALE_MS + 1) // 1000}s ago"


def test_step6_a_heartbeat_makes_a_stale_free_slot_live_again(catalog: Catalog) -> None:
    led = ledger(("h1", "haiku"))
    later = NOW + STALE_MS + 5_000
    assert not led.is_live(led.slots["h1"], later)
    led.heard("h1", later)
    assert led.is_live(led.slots["h1"], later)
    _, routed = decide(task(), catalog, led, now_ms=later)
    assert routed.chosen is not None and routed.chosen.slot_id == "h1"


def test_step6_incapable_slots_are_not_candidates(catalog: Catalog) -> None:
    led = ledger(("h1", "haiku"), ("s1", "sonnet"))
    _, routed = decide(task(requires={"reasoning": 7}), catalog, led)
    assert routed.chosen is not None and routed.chosen.slot_id == "s1"
    assert by_slot(routed)["h1"].verdict is Verdict.INCAPABLE
    assert by_slot(routed)["h1"].detail == "reasoning 4 < 7"


# -- step 7: await_slot -------------------------------------------------------------------------


def test_step7_no_free_capable_slot_awaits(catalog: Catalog) -> None:
    led = ledger(("h1", "haiku"))
    busy(led, "s1", "sonnet")
    busy(led, "c1", "codex")
    _, routed = decide(task(requires={"reasoning": 7}), catalog, led)
    assert routed.outcome is Outcome.AWAIT_SLOT
    assert routed.reason_code is ReasonCode.NO_FREE_CAPABLE_SLOT
    assert routed.chosen is None
    assert "(2 capable slots busy)" in routed.reason
    assert "rateable: codex, gpt-5, opus, sonnet" in routed.reason


def test_step7_with_no_slots_at_all_the_task_awaits(catalog: Catalog) -> None:
    _, routed = decide(task(), catalog, ledger())
    assert routed.outcome is Outcome.AWAIT_SLOT
    assert routed.reason_code is ReasonCode.NO_FREE_CAPABLE_SLOT
    assert routed.alternatives == ()


# -- step 8: choice -----------------------------------------------------------------------------


def test_step8_non_override_takes_the_lowest_tier(catalog: Catalog) -> None:
    led = ledger(("a", "opus"), ("b", "sonnet"), ("c", "haiku"))
    a, routed = decide(task(), catalog, led, ev=0.5, p50=0.5, p90=0.9)
    assert not a.override
    assert routed.chosen is not None and routed.chosen.slot_id == "c"
    assert routed.reason_code is ReasonCode.CHEAPEST_CAPABLE
    assert verdicts(routed) == {"a": Verdict.TIER_NOT_PREFERRED, "b": Verdict.TIER_NOT_PREFERRED, "c": Verdict.CHOSEN}
    assert by_slot(routed)["b"].detail == "tier 2, chose tier 1"


def test_step8_override_by_ev_takes_the_highest_tier(catalog: Catalog) -> None:
    led = ledger(("a", "haiku"), ("b", "sonnet"), ("c", "opus"))
    a, routed = decide(task(), catalog, led, ev=0.95, p50=0.5, p90=0.9)
    assert a.override
    assert routed.chosen is not None and routed.chosen.slot_id == "c"
    assert routed.reason_code is ReasonCode.OVERRIDE_HIGHEST_TIER
    assert "EV 0.95 > P90 0.9" in routed.reason
    assert by_slot(routed)["a"].detail == "tier 1, chose tier 3"


def test_step8_override_by_quest_priority_takes_the_highest_tier(catalog: Catalog) -> None:
    led = ledger(("a", "haiku"), ("b", "sonnet"))
    _, routed = decide(task(quest_priority=95), catalog, led, ev=0.1, p50=0.5, p90=0.9)
    assert routed.chosen is not None and routed.chosen.slot_id == "b"
    assert routed.reason_code is ReasonCode.OVERRIDE_HIGHEST_TIER
    assert "quest priority 95 >= 95" in routed.reason


def test_step8_override_still_respects_the_premium_block(catalog: Catalog) -> None:
    # quest priority overrides, but EV < P50 and priority < 90 still keep it off premium
    led = ledger(("a", "haiku"), ("b", "sonnet"), ("c", "opus"))
    a, routed = decide(task(priority=20, quest_priority=99), catalog, led, ev=0.1, p50=0.5, p90=0.9)
    assert a.override and a.premium_blocked
    assert routed.chosen is not None and routed.chosen.slot_id == "b"
    assert verdicts(routed)["c"] is Verdict.PREMIUM_BLOCKED


def test_step8_equal_tier_lowest_utilisation_for_account_and_model(catalog: Catalog) -> None:
    led = ledger(("h1", "haiku", "acct-a"), ("h2", "haiku", "acct-b"), ("m1", "minimax", "acct-a"))
    led.set_utilisation(account="acct-a", model="haiku", utilisation=0.9)
    led.set_utilisation(account="acct-b", model="haiku", utilisation=0.2)
    led.set_utilisation(account="acct-a", model="minimax", utilisation=0.5)
    led.set_utilisation(account="acct-b", model="minimax", utilisation=0.0)  # no minimax slot on acct-b
    _, routed = decide(task(), catalog, led)
    assert routed.chosen is not None and routed.chosen.slot_id == "h2"
    alts = by_slot(routed)
    assert alts["h1"].verdict is Verdict.HIGHER_UTILISATION
    assert alts["h1"].detail == "utilisation 0.90 > 0.20"
    assert alts["m1"].verdict is Verdict.HIGHER_UTILISATION


def test_step8_utilisation_beats_slot_id(catalog: Catalog) -> None:
    led = ledger(("a", "haiku"), ("z", "minimax"))
    led.set_utilisation(account="default", model="haiku", utilisation=0.5)
    _, routed = decide(task(), catalog, led)
    assert routed.chosen is not None and routed.chosen.slot_id == "z"


def test_step8_equal_tier_and_utilisation_smallest_slot_id(catalog: Catalog) -> None:
    led = ledger(("m1", "minimax"), ("h2", "haiku"), ("h3", "haiku"), ("g9", "glm"))
    _, routed = decide(task(), catalog, led)
    assert routed.chosen is not None and routed.chosen.slot_id == "g9"
    alts = by_slot(routed)
    for slot_id in ("m1", "h2", "h3"):
        assert alts[slot_id].verdict is Verdict.TIE_BREAK
        assert alts[slot_id].detail == "slot id after g9"


def test_step8_override_among_premium_models_uses_utilisation_then_slot_id(catalog: Catalog) -> None:
    led = ledger(("o1", "opus"), ("x1", "gpt-5"), ("x2", "gpt-5"))
    _, routed = decide(task(), catalog, led, ev=0.99, p50=0.5, p90=0.9)
    assert routed.chosen is not None and routed.chosen.slot_id == "o1"
    led.set_utilisation(account="default", model="opus", utilisation=0.3)
    _, routed = decide(task(), catalog, led, ev=0.99, p50=0.5, p90=0.9)
    assert routed.chosen is not None and routed.chosen.slot_id == "x1"


def test_step8_same_state_gives_the_same_answer(catalog: Catalog) -> None:
    specs = [("h3", "haiku"), ("g1", "glm"), ("h1", "haiku"), ("m2", "minimax", "acct-b")]
    first = decide(task(), catalog, ledger(*specs))[1]
    second = decide(task(), catalog, ledger(*reversed(specs)))[1]
    assert first.chosen == second.chosen
    assert first.chosen is not None and first.chosen.slot_id == "g1"


# -- the explanation ----------------------------------------------------------------------------


def test_explanation_every_verdict_in_one_decision(catalog: Catalog) -> None:
    # requires reasoning 5: haiku and minimax (4) are incapable; glm is the cheapest tier
    led = ledger(
        ("g1", "glm", "acct-a"),  # same tier as the choice, higher utilisation
        ("g2", "glm", "acct-b"),  # chosen
        ("g3", "glm", "acct-b"),  # same pool, larger id
        ("s1", "sonnet"),  # tier 2
        ("o1", "opus"),  # premium, blocked
        ("h1", "haiku"),  # incapable
    )
    led.mark_free(slot_id="g4", model="glm", account="acct-b", now_ms=NOW - 100_000)  # stale
    busy(led, "c1", "codex")
    gone(led, "x1", "gpt-5")
    led.set_utilisation(account="acct-a", model="glm", utilisation=0.5)
    led.set_utilisation(account="acct-b", model="glm", utilisation=0.1)
    _, routed = decide(task(priority=40, requires={"reasoning": 5}), catalog, led, ev=0.2, p50=0.5, p90=0.9)
    assert routed.outcome is Outcome.ASSIGNED
    assert routed.chosen is not None and routed.chosen.slot_id == "g2"
    assert routed.chosen.account == "acct-b" and routed.chosen.tier == 1
    alts = by_slot(routed)
    assert {k: v.verdict for k, v in alts.items()} == {
        "g1": Verdict.HIGHER_UTILISATION,
        "g2": Verdict.CHOSEN,
        "g3": Verdict.TIE_BREAK,
        "g4": Verdict.STALE,
        "s1": Verdict.TIER_NOT_PREFERRED,
        "o1": Verdict.PREMIUM_BLOCKED,
        "h1": Verdict.INCAPABLE,
        "c1": Verdict.BUSY,
        "x1": Verdict.GONE,
    }
    assert alts["g1"].detail == "utilisation 0.50 > 0.10"
    assert alts["g3"].detail == "slot id after g2"
    assert alts["g4"].detail == "last heard 100s ago"
    assert alts["s1"].detail == "tier 2, chose tier 1"
    assert alts["h1"].detail == "reasoning 4 < 5"
    assert alts["o1"].tier == 3 and alts["h1"].model == "haiku" and alts["g1"].account == "acct-a"
    assert "EV 0.2 (P50 0.5, P90 0.9), priority 40" in routed.reason
    assert routed.reason.startswith("Assigned to g2 (glm, tier 1)")


def test_explanation_alternative_to_json(catalog: Catalog) -> None:
    led = ledger(("h1", "haiku"), ("s1", "sonnet"))
    _, routed = decide(task(), catalog, led)
    docs = {d["slot_id"]: d for d in (alt.to_json() for alt in routed.alternatives)}
    assert docs["h1"] == {"slot_id": "h1", "model": "haiku", "account": "default", "tier": 1, "verdict": "chosen"}
    assert docs["s1"]["verdict"] == "tier_not_preferred"
    assert docs["s1"]["detail"] == "tier 2, chose tier 1"
    assert "count" not in docs["s1"]


@pytest.mark.parametrize(("n", "grouped"), [(10, False), (11, True), (25, True)])
def test_explanation_busy_slots_of_one_pool_group_above_ten(catalog: Catalog, n: int, grouped: bool) -> None:
    led = ledger(("s1", "sonnet"))
    for i in range(n):
        busy(led, f"h{i:02d}", "haiku")
    _, routed = decide(task(), catalog, led)
    haiku = [alt for alt in routed.alternatives if alt.model == "haiku"]
    if grouped:
        assert len(haiku) == 1
        (alt,) = haiku
        assert alt.verdict is Verdict.BUSY and alt.count == n and alt.slot_id is None
        assert alt.slot_ids == tuple(f"h{i:02d}" for i in range(10))
        doc = alt.to_json()
        assert doc["count"] == n and doc["slot_ids"] == [f"h{i:02d}" for i in range(10)] and doc["slot_id"] is None
    else:
        assert len(haiku) == n
        assert all(alt.count == 1 and alt.verdict is Verdict.BUSY for alt in haiku)


def test_explanation_grouping_counts_free_slots_with_one_shared_verdict(catalog: Catalog) -> None:
    led = ledger(*[(f"h{i:02d}", "haiku") for i in range(12)])
    for i in range(11):
        gone(led, f"x{i:02d}", "glm")
    _, routed = decide(task(), catalog, led)
    assert routed.chosen is not None and routed.chosen.slot_id == "h00"
    tally = {(alt.model, alt.verdict): alt for alt in routed.alternatives}
    chosen = tally[("haiku", Verdict.CHOSEN)]
    assert chosen.count == 1 and chosen.slot_id == "h00"
    ties = tally[("haiku", Verdict.TIE_BREAK)]
    assert ties.count == 11 and ties.slot_ids == tuple(f"h{i:02d}" for i in range(1, 11))
    assert tally[("glm", Verdict.GONE)].count == 11
    assert sum(alt.count for alt in routed.alternatives) == 23


def test_explanation_grouping_of_incapable_busy_and_free_in_one_pool(catalog: Catalog) -> None:
    led = ledger(("s1", "sonnet"), *[(f"h{i:02d}", "haiku") for i in range(6)])
    for i in range(6, 12):
        busy(led, f"h{i:02d}", "haiku")
    _, routed = decide(task(requires={"reasoning": 7}), catalog, led)
    (alt,) = [a for a in routed.alternatives if a.model == "haiku"]
    assert alt.verdict is Verdict.INCAPABLE and alt.count == 12 and alt.detail == "reasoning 4 < 7"
    assert len(alt.slot_ids) == 10


def test_explanation_stale_slots_await_with_no_live_slot_reason(catalog: Catalog) -> None:
    led = ledger(("h1", "haiku"), ("h2", "haiku"))
    _, routed = decide(task(), catalog, led, now_ms=NOW + 200_000)
    assert routed.reason_code is ReasonCode.NO_LIVE_SLOT
    assert "(2) have not been heard from recently" in routed.reason
    assert verdicts(routed) == {"h1": Verdict.STALE, "h2": Verdict.STALE}


def test_explanation_busy_wins_over_premium_blocked_in_await_reason(catalog: Catalog) -> None:
    led = ledger(("o1", "opus"))
    busy(led, "h1", "haiku")
    _, routed = decide(task(priority=10), catalog, led, ev=0.1, p50=0.5, p90=0.9)
    assert routed.outcome is Outcome.AWAIT_SLOT
    assert routed.reason_code is ReasonCode.NO_FREE_CAPABLE_SLOT
    assert verdicts(routed) == {"o1": Verdict.PREMIUM_BLOCKED, "h1": Verdict.BUSY}


def test_reason_code_values_are_the_wire_strings() -> None:
    assert {c.value for c in ReasonCode} >= {
        "cheapest_capable",
        "override_highest_tier",
        "only_premium_rateable",
        "no_free_capable_slot",
        "premium_blocked",
        "no_live_slot",
        "no_capable_model",
    }
    assert {v.value for v in Verdict} == {
        "chosen",
        "busy",
        "stale",
        "gone",
        "incapable",
        "premium_blocked",
        "tier_not_preferred",
        "higher_utilisation",
        "tie_break",
        "budget_exhausted",
        "low_success",  # v1.1: the quality gate (router/quality.py)
    }


def test_reason_mentions_quest_priority_when_given(catalog: Catalog) -> None:
    _, routed = decide(task(quest_priority=40), catalog, ledger(("h1", "haiku")), ev=0.3, p50=None, p90=None)
    assert "EV 0.3 (P50 n/a, P90 n/a), priority 50, quest priority 40" in routed.reason


@given(st.floats(allow_nan=False, allow_infinity=False) | st.sampled_from([0.0, -0.0, 1e-300, 0.123456]))
def test_remembered_formatting_prints_exactly_as_format_does(value: float) -> None:
    first, again = policy._g3(value), policy._g3(value)  # the second answer comes from the cache
    assert first == again == f"{value:.3g}"


def test_zero_and_negative_zero_print_apart_though_they_are_equal_keys() -> None:
    assert (policy._g3(-0.0), policy._g3(0.0), policy._g3(-0.0)) == ("-0", "0", "-0")


def test_the_formatting_cache_stays_bounded() -> None:
    for n in range(policy._G3_CACHE_MAX + 10):
        policy._g3(n + 0.5)
    assert 0 < len(policy._G3_CACHE) <= policy._G3_CACHE_MAX
    assert policy._g3(2.5) == "2.5"

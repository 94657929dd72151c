"""Budgets: the file's rules, UTC periods, and spend booked, settled once, rolled over and restored."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from router.budgets import (
    Budget,
    BudgetBook,
    BudgetMode,
    Period,
    parse_budgets,
    period_bounds_ms,
    period_key,
)
from router.errors import ConfigError

MODELS = {"haiku", "sonnet", "opus", "gpt-5"}


def ms(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp() * 1000)


def premium(usd: float = 10.0, mode: BudgetMode = BudgetMode.SOFT, period: Period = Period.DAY) -> Budget:
    return Budget(name="premium-daily", period=period, usd=usd, mode=mode, models=frozenset({"opus", "gpt-5"}))


# -- the file --------------------------------------------------------------------------------------


def test_parses_the_protocol_example() -> None:
    doc = {
        "budget": [
            {
                "name": "premium-daily",
                "period": "day",
                "usd": 250.0,
                "account": "acct-a",
                "models": ["opus", "gpt-5"],
                "mode": "soft",
            },
            {"name": "all-monthly", "period": "month", "usd": 5000, "mode": "hard"},
        ]
    }
    first, second = parse_budgets(doc, known_models=MODELS)
    assert first == Budget(
        name="premium-daily",
        period=Period.DAY,
        usd=250.0,
        mode=BudgetMode.SOFT,
        account="acct-a",
        models=frozenset({"opus", "gpt-5"}),
    )
    assert (second.account, second.models, second.mode, second.usd) == (None, None, BudgetMode.HARD, 5000.0)


def test_no_tables_means_no_budgets() -> None:
    assert parse_budgets({}, known_models=MODELS) == ()


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"name": "b", "period": "day", "usd": 1, "models": ["nope"]}, "unknown model 'nope'"),
        ({"name": "b", "period": "week", "usd": 1}, "period 'week' is not one of 'day', 'month'"),
        ({"name": "b", "usd": 1}, "'period' is required"),
        ({"name": "b", "period": "day", "usd": -1}, "'usd' must be a finite number above 0"),
        ({"name": "b", "period": "day", "usd": math.nan}, "'usd' must be a finite number above 0"),
        ({"name": "b", "period": "day", "usd": 0}, "'usd' must be a finite number above 0"),
        ({"name": "b", "period": "day", "usd": "5"}, "'usd' must be a number"),
        ({"name": "b", "period": "day", "usd": True}, "'usd' must be a number"),
        ({"name": "b", "period": "day", "usd": 1, "limit": 3}, "unknown key 'limit'"),
        ({"name": "b", "period": "day", "usd": 1, "mode": "strict"}, "mode 'strict' is not one of"),
        ({"name": "", "period": "day", "usd": 1}, "'name' must be a non-empty string"),
        ({"period": "day", "usd": 1}, "'name' must be a non-empty string"),
        ({"name": "b", "period": "day", "usd": 1, "models": []}, "'models' must be a non-empty list"),
        ({"name": "b", "period": "day", "usd": 1, "account": 3}, "'account' must be a non-empty string"),
    ],
)
def test_bad_tables_are_one_clear_error(table: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_budgets({"budget": [table]}, known_models=MODELS)


def test_a_duplicate_name_and_an_unknown_top_level_key_are_refused() -> None:
    table = {"name": "b", "period": "day", "usd": 1}
    with pytest.raises(ConfigError, match="budget 'b' is defined twice"):
        parse_budgets({"budget": [table, table]}, known_models=MODELS)
    with pytest.raises(ConfigError, match="unknown key 'budgets'"):
        parse_budgets({"budgets": [table]}, known_models=MODELS)


# -- periods ---------------------------------------------------------------------------------------


def test_periods_are_utc_calendar_days_and_months() -> None:
    late = ms("2026-12-31T23:59:59.999")
    assert period_key(Period.DAY, late) == "2026-12-31"
    assert period_key(Period.MONTH, late) == "2026-12"
    assert period_key(Period.DAY, late + 1) == "2027-01-01"
    assert period_bounds_ms(Period.DAY, late) == (ms("2026-12-31T00:00"), ms("2027-01-01T00:00"))
    assert period_bounds_ms(Period.MONTH, late) == (ms("2026-12-01T00:00"), ms("2027-01-01T00:00"))
    assert period_bounds_ms(Period.MONTH, ms("2028-02-10T12:00")) == (ms("2028-02-01T00:00"), ms("2028-03-01T00:00"))


# -- the book --------------------------------------------------------------------------------------


def test_an_assignment_books_its_estimate_on_the_budgets_covering_its_slot() -> None:
    book = BudgetBook([premium(), Budget(name="acct-b", period=Period.MONTH, usd=100.0, account="acct-b")])
    now = ms("2026-12-08T10:00")
    charge = book.book(account="acct-a", model="opus", usd=4.0, now_ms=now)
    book.book(account="acct-b", model="haiku", usd=1.5, now_ms=now)
    assert charge == [["premium-daily"], ["2026-12-08"], 4.0]
    assert book.book(account="acct-a", model="haiku", usd=1.0, now_ms=now) is None  # no budget covers it
    assert book.spent("premium-daily", now) == 4.0
    assert book.spent("acct-b", now) == 1.5


def test_usage_replaces_the_estimate_and_a_lapse_refunds_it() -> None:
    book = BudgetBook([premium()])
    now = ms("2026-12-08T10:00")
    first = book.book(account="a", model="opus", usd=4.0, now_ms=now)
    second = book.book(account="a", model="opus", usd=3.0, now_ms=now)
    assert first is not None and second is not None
    book.settle(first, actual_usd=2.5)
    assert book.spent("premium-daily", now) == 5.5
    book.refund(second)
    assert book.spent("premium-daily", now) == 2.5


def test_exhausted_soft_budget_blocks_only_non_override_tasks_and_hard_blocks_all() -> None:
    now = ms("2026-12-08T10:00")
    soft, hard = BudgetBook([premium(usd=5.0)]), BudgetBook([premium(usd=5.0, mode=BudgetMode.HARD)])
    for book in (soft, hard):
        book.book(account="a", model="opus", usd=4.9, now_ms=now)
        assert book.blocking("a", "opus", override=False, now_ms=now) is None  # not yet spent
        book.book(account="a", model="opus", usd=0.2, now_ms=now)
        assert book.blocking("a", "haiku", override=False, now_ms=now) is None  # not covered
    standing = soft.blocking("a", "opus", override=False, now_ms=now)
    assert standing is not None and standing.detail() == "premium-daily: $5.10 / $5.00 (day)"
    assert soft.blocking("a", "opus", override=True, now_ms=now) is None
    assert hard.blocking("a", "opus", override=True, now_ms=now) is not None
    assert soft.exhausted_pools([("opus", "a"), ("haiku", "a")], now) == {("opus", "a"): False}
    assert hard.exhausted_pools([("opus", "a"), ("haiku", "a")], now) == {("opus", "a"): True}


def test_the_day_rollover_reopens_a_budget_and_late_usage_does_not_touch_the_new_day() -> None:
    book = BudgetBook([premium(usd=5.0)])
    day1 = ms("2026-12-08T23:59")
    late = book.book(account="a", model="opus", usd=6.0, now_ms=day1)
    assert late is not None
    assert book.blocking("a", "opus", override=False, now_ms=day1) is not None
    day2 = ms("2026-12-09T00:00")
    assert book.spent("premium-daily", day2) == 0.0
    assert book.blocking("a", "opus", override=False, now_ms=day2) is None
    book.book(account="a", model="opus", usd=1.0, now_ms=day2)
    book.settle(late, actual_usd=3.0)  # the day-1 task's usage arrives after midnight
    assert book.spent("premium-daily", day2) == 1.0


def test_crossings_are_reported_once_per_mark_and_period() -> None:
    book = BudgetBook([premium(usd=10.0)])
    now = ms("2026-12-08T10:00")
    book.book(account="a", model="opus", usd=8.5, now_ms=now)
    assert [mark for _, mark in book.crossings(now)] == [80]
    assert book.crossings(now) == []
    book.book(account="a", model="opus", usd=2.0, now_ms=now)
    assert [mark for _, mark in book.crossings(now)] == [100]
    tomorrow = ms("2026-12-09T01:00")
    book.book(account="a", model="opus", usd=9.0, now_ms=tomorrow)
    assert [mark for _, mark in book.crossings(tomorrow)] == [80]


def test_projection_extrapolates_the_period_rate() -> None:
    book = BudgetBook([premium(usd=100.0)])
    noon = ms("2026-12-08T12:00")
    book.book(account="a", model="opus", usd=10.0, now_ms=noon)
    assert book.standing("premium-daily", noon).projected_usd == pytest.approx(20.0)


def test_snapshot_round_trip_keeps_spend_and_reported_crossings() -> None:
    book = BudgetBook([premium(usd=10.0), Budget(name="gone", period=Period.DAY, usd=1.0, models=frozenset({"haiku"}))])
    now = ms("2026-12-08T10:00")
    book.book(account="a", model="opus", usd=9.0, now_ms=now)
    assert [mark for _, mark in book.crossings(now)] == [80]
    restored = BudgetBook([premium(usd=10.0)])
    restored.restore(book.to_json())
    assert restored.spent("premium-daily", now) == 9.0
    assert restored.crossings(now) == []  # reported before the restart: not again
    assert not restored.dirty


def test_reloading_keeps_spend_of_kept_budgets_and_a_raised_limit_reopens() -> None:
    book = BudgetBook([premium(usd=5.0)])
    now = ms("2026-12-08T10:00")
    book.book(account="a", model="opus", usd=6.0, now_ms=now)
    book.set_budgets([premium(usd=50.0)])
    assert book.spent("premium-daily", now) == 6.0
    assert book.blocking("a", "opus", override=False, now_ms=now) is None


@given(st.lists(st.tuples(st.floats(0, 5), st.booleans(), st.floats(0, 5)), max_size=60))
def test_spend_never_passes_a_hard_limit_by_more_than_one_estimate(steps: list[tuple[float, bool, float]]) -> None:
    """Book only while not blocked, as the router does: spend stays under limit + largest estimate
    as long as the actual costs do not exceed their estimates."""
    book = BudgetBook([premium(usd=10.0, mode=BudgetMode.HARD)])
    now = ms("2026-12-08T10:00")
    largest = 0.0
    for estimate, report, fraction in steps:
        if book.blocking("a", "opus", override=True, now_ms=now) is None:
            charge = book.book(account="a", model="opus", usd=estimate, now_ms=now)
            assert charge is not None
            largest = max(largest, estimate)
            if report:
                book.settle(charge, actual_usd=estimate * min(fraction / 5, 1.0))
        assert book.spent("premium-daily", now) <= 10.0 + largest + 1e-9

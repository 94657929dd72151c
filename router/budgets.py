"""Spend budgets per account and model (PROTOCOL.md v1.1, Budgets), and the spend booked against them.

A budget caps what the slots it covers (one account or all, some models or all) may cost in a UTC
calendar day or month. Spend is booked at assignment (the decision's estimate) and corrected when
the slot reports the actual `cost_usd`, once per decision, so a duplicated usage report cannot
count twice. The book is pure: time comes in as `now_ms`, and the worker persists the book with the
ledger snapshot in the same atomic step as the decisions that changed it, so a restart or a
takeover neither forgets nor double-counts spend.

A budget is exhausted once its spend reaches its limit. Each assignment is checked before it is
booked, so spend can pass a limit by at most the estimate of the one assignment that crossed it
(plus whatever the actual costs exceed their estimates by).
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Final, TypeVar

from router.errors import ConfigError

_KEYS: Final = frozenset({"name", "period", "usd", "account", "models", "mode"})
_E = TypeVar("_E", bound=StrEnum)


class Period(StrEnum):
    DAY = "day"
    MONTH = "month"


class BudgetMode(StrEnum):
    SOFT = "soft"  # once spent, only override tasks may still use the slots it covers
    HARD = "hard"  # once spent, nothing may


@dataclass(frozen=True, slots=True, kw_only=True)
class Budget:
    """One `[[budget]]` table of the budgets file."""

    name: str
    period: Period
    usd: float
    mode: BudgetMode = BudgetMode.SOFT
    account: str | None = None  # None: every account
    models: frozenset[str] | None = None  # None: every model

    def covers(self, account: str, model: str) -> bool:
        return (self.account is None or self.account == account) and (self.models is None or model in self.models)

    def blocks(self, *, override: bool) -> bool:
        """Whether this budget, once exhausted, keeps a task of this kind off the slots it covers."""
        return self.mode is BudgetMode.HARD or not override


def parse_budgets(doc: Mapping[str, Any], *, known_models: Collection[str]) -> tuple[Budget, ...]:
    """The budgets of a parsed TOML document; ConfigError with one line naming what is wrong."""
    unknown_top = sorted(set(doc) - {"budget"})
    if unknown_top:
        raise ConfigError(f"budgets: unknown key {unknown_top[0]!r} (expected [[budget]] tables)")
    tables = doc.get("budget", [])
    if not isinstance(tables, list):
        raise ConfigError("budgets: 'budget' must be an array of tables ([[budget]])")
    budgets: list[Budget] = []
    seen: set[str] = set()
    for index, table in enumerate(tables, start=1):
        budget = _parse_one(table, index, known_models)
        if budget.name in seen:
            raise ConfigError(f"budgets: budget {budget.name!r} is defined twice")
        seen.add(budget.name)
        budgets.append(budget)
    return tuple(budgets)


def _parse_one(table: object, index: int, known_models: Collection[str]) -> Budget:
    where = f"budgets: budget #{index}"
    if not isinstance(table, dict):
        raise ConfigError(f"{where} is not a table")
    unknown = sorted(set(table) - _KEYS)
    if unknown:
        raise ConfigError(f"{where}: unknown key {unknown[0]!r} (allowed: {', '.join(sorted(_KEYS))})")
    name = table.get("name")
    if not isinstance(name, str) or not name.strip() or len(name) > 128:
        raise ConfigError(f"{where}: 'name' must be a non-empty string of at most 128 characters")
    where = f"budgets: budget {name!r}"
    return Budget(
        name=name,
        period=_choice(table, "period", Period, where, default=None),
        usd=_usd(table.get("usd"), where),
        mode=_choice(table, "mode", BudgetMode, where, default=BudgetMode.SOFT),
        account=_account(table.get("account"), where),
        models=_models(table.get("models"), where, known_models),
    )


def _choice(table: Mapping[str, Any], key: str, kind: type[_E], where: str, *, default: _E | None) -> _E:
    value = table.get(key)
    allowed = ", ".join(repr(v.value) for v in kind)
    if value is None:
        if default is None:
            raise ConfigError(f"{where}: {key!r} is required ({allowed})")
        return default
    try:
        return kind(value)
    except ValueError:
        raise ConfigError(f"{where}: {key} {value!r} is not one of {allowed}") from None


def _usd(value: object, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{where}: 'usd' must be a number of dollars")
    usd = float(value)
    if not math.isfinite(usd) or usd <= 0:
        raise ConfigError(f"{where}: 'usd' must be a finite number above 0, not {value!r}")
    return usd


def _account(value: object, where: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{where}: 'account' must be a non-empty string")
    return value


def _models(value: object, where: str, known_models: Collection[str]) -> frozenset[str] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not value or not all(isinstance(m, str) for m in value):
        raise ConfigError(f"{where}: 'models' must be a non-empty list of model ids")
    unknown = sorted(set(value) - set(known_models))
    if unknown:
        known = ", ".join(sorted(known_models))
        raise ConfigError(f"{where}: unknown model {unknown[0]!r} (the catalogue has {known})")
    return frozenset(value)


# -- periods ---------------------------------------------------------------------------------------


_DAY_MS: Final = 86_400_000
# The keys and bounds of the day and month a UTC day falls in, by day number: every decision with
# budgets asks for them per pool, and the calendar arithmetic costs more than the rest of the check.
_PERIODS: Final[dict[int, tuple[str, str, tuple[int, int], tuple[int, int]]]] = {}


def _periods_of_day(day: int) -> tuple[str, str, tuple[int, int], tuple[int, int]]:
    found = _PERIODS.get(day)
    if found is None:
        start = datetime.fromtimestamp(day * 86_400, tz=UTC)
        month = start.replace(day=1)
        next_month = (
            month.replace(year=month.year + 1, month=1) if month.month == 12 else month.replace(month=month.month + 1)
        )
        found = (
            start.strftime("%Y-%m-%d"),
            start.strftime("%Y-%m"),
            (day * _DAY_MS, (day + 1) * _DAY_MS),
            (int(month.timestamp()) * 1000, int(next_month.timestamp()) * 1000),
        )
        if len(_PERIODS) >= 64:
            _PERIODS.clear()
        _PERIODS[day] = found
    return found


def period_key(period: Period, now_ms: int) -> str:
    """The UTC calendar period `now_ms` falls in: '2026-12-08' for a day, '2026-12' for a month."""
    day_key, month_key, _, _ = _periods_of_day(now_ms // _DAY_MS)
    return day_key if period is Period.DAY else month_key


def period_bounds_ms(period: Period, now_ms: int) -> tuple[int, int]:
    """Start and end (exclusive) of the UTC period `now_ms` falls in, in epoch ms."""
    _, _, day_bounds, month_bounds = _periods_of_day(now_ms // _DAY_MS)
    return day_bounds if period is Period.DAY else month_bounds


def _is_charge(charge: object) -> bool:
    """The router's form of a booking: [names, periods, usd], names and periods of equal length."""
    return (
        isinstance(charge, list)
        and len(charge) == 3
        and isinstance(charge[0], list)
        and isinstance(charge[1], list)
        and len(charge[0]) == len(charge[1])
        and all(isinstance(x, str) for x in charge[0] + charge[1])
        and isinstance(charge[2], int | float)
        and not isinstance(charge[2], bool)
        and math.isfinite(charge[2])
    )


def _is_spend(spend: object) -> bool:
    """The router's form of a budget's spend: [period key, usd, highest crossing reported]."""
    return (
        isinstance(spend, list)
        and len(spend) == 3
        and isinstance(spend[0], str)
        and isinstance(spend[1], int | float)
        and not isinstance(spend[1], bool)
        and math.isfinite(spend[1])
        and isinstance(spend[2], int)
        and not isinstance(spend[2], bool)
    )


# -- the book --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class BudgetStanding:
    """One budget's spend in its current period, as of `now_ms`."""

    budget: Budget
    period: str
    spent_usd: float
    projected_usd: float  # at the period's average rate so far, by its end

    @property
    def exhausted(self) -> bool:
        return self.spent_usd >= self.budget.usd

    @property
    def share(self) -> float:
        return self.spent_usd / self.budget.usd

    def detail(self) -> str:
        """The verdict detail: the budget's name, spent / limit."""
        return f"{self.budget.name}: ${self.spent_usd:.2f} / ${self.budget.usd:.2f} ({self.budget.period})"


Charge = list[Any]  # [budget names, their period keys, usd booked]: JSON, kept with the task's assignment


class BudgetBook:
    """Spend per budget in its current period.

    An assignment's booking comes back as a `Charge` that the caller keeps with the assignment (the
    router's assigned-task record, persisted with the snapshot), so settling it when usage arrives
    happens once, with that record, and needs no second index here. `dirty` says the spend changed
    since the snapshot last took it; crossings of 80% and 100% are reported once per period."""

    def __init__(self, budgets: Iterable[Budget] = ()) -> None:
        self.budgets: dict[str, Budget] = {}
        self._spent: dict[str, tuple[str, float]] = {}  # name -> (period key, spent)
        self._warned: dict[str, tuple[str, int]] = {}  # name -> (period, highest mark reported: 80 or 100)
        self._removed: set[str] = set()  # dropped budgets whose snapshot entry is still to delete
        self.set_budgets(budgets)
        self.dirty = False  # nothing booked yet: the snapshot has nothing new to take

    def __bool__(self) -> bool:
        return bool(self.budgets)

    def set_budgets(self, budgets: Iterable[Budget]) -> None:
        """Replace the budgets (a reloaded file); spend booked under a kept name is kept, that of a
        dropped one is forgotten (and deleted from the snapshot), so re-adding the name starts at 0."""
        self.budgets = {b.name: b for b in budgets}
        for name in list(self._spent):
            if name not in self.budgets:
                del self._spent[name]
                self._warned.pop(name, None)
                self._removed.add(name)
        self.dirty = True

    def spent(self, name: str, now_ms: int) -> float:
        budget = self.budgets[name]
        period, usd = self._spent.get(name, ("", 0.0))
        return usd if period == period_key(budget.period, now_ms) else 0.0

    def standing(self, name: str, now_ms: int) -> BudgetStanding:
        budget = self.budgets[name]
        spent = self.spent(name, now_ms)
        start, end = period_bounds_ms(budget.period, now_ms)
        elapsed = max(1, now_ms - start)
        return BudgetStanding(
            budget=budget,
            period=period_key(budget.period, now_ms),
            spent_usd=spent,
            projected_usd=spent * (end - start) / elapsed,
        )

    def standings(self, now_ms: int) -> list[BudgetStanding]:
        return [self.standing(name, now_ms) for name in sorted(self.budgets)]

    def blocking(self, account: str, model: str, *, override: bool, now_ms: int) -> BudgetStanding | None:
        """The first exhausted budget (by name) that keeps this task off a slot of (account, model)."""
        for name in sorted(self.budgets):
            budget = self.budgets[name]
            if budget.covers(account, model) and budget.blocks(override=override):
                standing = self.standing(name, now_ms)
                if standing.exhausted:
                    return standing
        return None

    def exhausted_pools(self, pools: Iterable[tuple[str, str]], now_ms: int) -> dict[tuple[str, str], bool]:
        """Each (model, account) pool under an exhausted budget: True when a hard budget keeps every task
        off it, False when only soft budgets do (override tasks may still use it)."""
        exhausted = [s for s in self.standings(now_ms) if s.exhausted]
        out: dict[tuple[str, str], bool] = {}
        if not exhausted:
            return out
        for model, account in pools:
            covering = [s for s in exhausted if s.budget.covers(account, model)]
            if covering:
                out[(model, account)] = any(s.budget.mode is BudgetMode.HARD for s in covering)
        return out

    def book(self, *, account: str, model: str, usd: float, now_ms: int) -> Charge | None:
        """An assignment's estimate, booked at once against every budget that covers its slot."""
        names = [n for n in sorted(self.budgets) if self.budgets[n].covers(account, model)]
        if not names or not math.isfinite(usd) or usd < 0:
            return None
        periods = [period_key(self.budgets[n].period, now_ms) for n in names]
        for name, period in zip(names, periods, strict=True):
            self._add(name, period, usd)
        return [names, periods, usd]

    def settle(self, charge: Charge, *, actual_usd: float) -> None:
        """Replace a booked estimate by the reported cost (the caller settles each charge once)."""
        if math.isfinite(actual_usd) and actual_usd >= 0 and _is_charge(charge):
            self._correct(charge, actual_usd - float(charge[2]))

    def refund(self, charge: Charge) -> None:
        """Take a booking back: the assignment lapsed before its slot started it."""
        if _is_charge(charge):
            self._correct(charge, -float(charge[2]))

    def _correct(self, charge: Charge, delta: float) -> None:
        if not _is_charge(charge):
            return  # not the router's form (a snapshot edited by hand): nothing it could settle
        names, periods = charge[0], charge[1]
        for name, period in zip(names, periods, strict=True):
            if name in self.budgets and self._spent.get(name, ("", 0.0))[0] == period:
                self._add(name, period, delta)  # a correction for a closed period changes nothing

    def crossings(self, now_ms: int) -> list[tuple[BudgetStanding, int]]:
        """Budgets that passed 80% or 100% of their limit since last asked: (standing, mark), once per period."""
        out = []
        for standing in self.standings(now_ms):
            mark = 100 if standing.share >= 1 else 80 if standing.share >= 0.8 else 0
            period, reported = self._warned.get(standing.budget.name, ("", 0))
            if period != standing.period:
                reported = 0
            if mark > reported:
                out.append((standing, mark))
                self._warned[standing.budget.name] = (standing.period, mark)
        return out

    def _add(self, name: str, period: str, usd: float) -> None:
        held_period, spent = self._spent.get(name, (period, 0.0))
        if held_period != period:
            spent = 0.0  # a new period opens
        self._spent[name] = (period, max(0.0, spent + usd))
        self.dirty = True

    # -- snapshot --------------------------------------------------------------------------------

    def to_json(self) -> dict[str, list[Any] | None]:
        """Spend per budget: name -> [period, usd, highest crossing reported]; None: delete the entry
        (the budget was dropped since the last call)."""
        out: dict[str, list[Any] | None] = dict.fromkeys(self._removed)
        self._removed = set()
        out.update((name, [period, usd, self._reported(name, period)]) for name, (period, usd) in self._spent.items())
        return out

    def _reported(self, name: str, period: str) -> int:
        warned_period, mark = self._warned.get(name, ("", 0))
        return mark if warned_period == period else 0

    def restore(self, doc: Mapping[str, Any]) -> None:
        """Spend from a snapshot; budgets no longer configured, and entries not of the router's form
        (a hash edited by hand), are left out: a bad entry must not stop a restart."""
        self._spent, self._warned = {}, {}
        for name, spend in doc.items():
            if name in self.budgets and _is_spend(spend):
                period, usd, mark = spend
                self._spent[name] = (period, float(usd))
                self._warned[name] = (period, int(mark))
        self._removed = set()
        self.dirty = False

"""POLICY.md step 3 (where EV comes from, the rolling P50/P90) and catalogue loading."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from router.catalog import Catalog, load_catalog, parse_catalog
from router.errors import CatalogError
from router.ev import EVResolver, EVWindow
from router.values import Task


def task(task_id: str = "t1", priority: int = 50, ev: float | None = None) -> Task:
    return Task(task_id=task_id, priority=priority, requires={}, ev=ev)


class CountingScorer:
    def __init__(self, *values: float) -> None:
        self.values = list(values)
        self.calls: list[str] = []

    def __call__(self, t: Task) -> float:
        self.calls.append(t.task_id)
        return self.values[min(len(self.calls), len(self.values)) - 1]


# -- step 3: EV ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("given_ev", "expected"), [(0.7, 0.7), (0.0, 0.0), (3, 3.0), (-1.5, -1.5)])
def test_ev_given_by_the_task_wins_over_the_scorer(given_ev: float, expected: float) -> None:
    scorer = CountingScorer(0.123)
    assert EVResolver(scorer=scorer).resolve(task(ev=given_ev), now_s=0) == expected
    assert scorer.calls == []


@pytest.mark.parametrize(("priority", "expected"), [(0, 0.0), (37, 0.37), (100, 1.0)])
def test_ev_without_scorer_is_priority_over_100(priority: int, expected: float) -> None:
    assert EVResolver().resolve(task(priority=priority), now_s=0) == pytest.approx(expected)


def test_ev_scorer_result_is_cached_per_task_for_60_seconds_of_passed_in_time() -> None:
    scorer = CountingScorer(0.1, 0.2, 0.3)
    resolver = EVResolver(scorer=scorer)
    assert resolver.resolve(task("a"), now_s=1000.0) == 0.1
    assert resolver.resolve(task("a"), now_s=1059.999) == 0.1  # still cached
    assert scorer.calls == ["a"]
    assert resolver.resolve(task("a"), now_s=1060.0) == 0.2  # 60 s later: scored again
    assert scorer.calls == ["a", "a"]
    assert resolver.resolve(task("a"), now_s=1119.0) == 0.2  # cached from 1060


def test_ev_scorer_cache_is_per_task() -> None:
    scorer = CountingScorer(0.1, 0.2)
    resolver = EVResolver(scorer=scorer)
    assert resolver.resolve(task("a"), now_s=0) == 0.1
    assert resolver.resolve(task("b"), now_s=1) == 0.2
    assert resolver.resolve(task("a"), now_s=2) == 0.1
    assert scorer.calls == ["a", "b"]


def test_ev_scorer_cache_is_bounded_oldest_first() -> None:
    scorer = CountingScorer(1.0)
    resolver = EVResolver(scorer=scorer, cache_max=2)
    for tid in ("a", "b", "c"):
        resolver.resolve(task(tid), now_s=0)
    resolver.resolve(task("c"), now_s=1)
    resolver.resolve(task("b"), now_s=1)
    assert scorer.calls == ["a", "b", "c"]
    resolver.resolve(task("a"), now_s=1)  # evicted: scored again
    assert scorer.calls == ["a", "b", "c", "a"]


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_ev_scorer_returning_a_non_finite_number_is_an_error(bad: float) -> None:
    with pytest.raises(ValueError, match=r"EV scorer returned .* for task 't1'"):
        EVResolver(scorer=lambda t: bad).resolve(task(), now_s=0)


@pytest.mark.parametrize(
    ("values", "q", "expected"),
    [
        ([], 0.5, None),
        ([0.4], 0.5, 0.4),
        ([0.4], 0.9, 0.4),
        ([1, 2, 3, 4], 0.5, 2.5),
        ([4, 1, 3, 2], 0.9, 3.7),  # pos 2.7 between 3 and 4
        ([1, 2, 3, 4, 5], 0.5, 3.0),
        ([0, 10], 0.9, 9.0),
        ([0, 10], 0.0, 0.0),
        ([0, 10], 1.0, 10.0),
        ([5, 5, 5, 1], 0.5, 5.0),
    ],
)
def test_ev_window_percentile_linear_interpolation(values: list[float], q: float, expected: float | None) -> None:
    got = EVWindow(values=values).percentile(q)
    if expected is None:
        assert got is None
    else:
        assert got == pytest.approx(expected)


def test_ev_window_p50_p90_properties() -> None:
    w = EVWindow(values=[0.1 * i for i in range(1, 11)])  # 0.1 .. 1.0
    assert w.p50 == pytest.approx(0.55)
    assert w.p90 == pytest.approx(0.91)


def test_ev_window_rolls_over_the_last_size_values() -> None:
    w = EVWindow(size=3)
    for v in (9.0, 8.0, 1.0, 2.0, 3.0):
        w.add(v)
    assert len(w) == 3
    assert w.values() == [1.0, 2.0, 3.0]
    assert w.p50 == 2.0
    assert w.percentile(1.0) == 3.0  # 9 and 8 have left the window


def test_ev_window_drops_one_copy_of_a_repeated_value() -> None:
    w = EVWindow(size=2, values=[5.0, 5.0, 1.0])
    assert w.values() == [5.0, 1.0]
    assert w.percentile(0.0) == 1.0 and w.percentile(1.0) == 5.0


def test_ev_window_size_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        EVWindow(size=0)


def _reference_percentile(values: list[float], q: float) -> float:
    s = sorted(values)
    pos = q * (len(s) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


@settings(max_examples=200, deadline=None)
@given(
    values=st.lists(st.floats(min_value=-1e6, max_value=1e6, allow_nan=False), min_size=1, max_size=60),
    size=st.integers(min_value=1, max_value=20),
    q=st.sampled_from([0.0, 0.1, 0.5, 0.9, 1.0]),
)
def test_ev_window_matches_a_sorted_copy_of_the_last_values(values: list[float], size: int, q: float) -> None:
    w = EVWindow(size=size)
    for v in values:
        w.add(v)
    recent = values[-size:]
    assert w.values() == recent
    got = w.percentile(q)
    assert got is not None
    assert got == pytest.approx(_reference_percentile(recent, q), rel=1e-9, abs=1e-9)


# -- catalogue ----------------------------------------------------------------------------------

GOOD = """
prices_as_of = "2025-01-01"
[models.cheap]
tier = 1
provider = "p"
input_usd_per_mtok = 1
output_usd_per_mtok = 5.5
capabilities = { coding = 4 }
[models.big]
tier = 3
provider = "q"
input_usd_per_mtok = 5
output_usd_per_mtok = 25
capabilities = { coding = 10 }
[layers.unknown]
input_tokens = 100
output_tokens = 10
[layers.chore]
input_tokens = 1000
output_tokens = 500
"""


def test_catalog_parses_models_layers_and_prices() -> None:
    cat = parse_catalog(GOOD, source="mem.toml")
    assert set(cat.models) == {"cheap", "big"}
    assert cat.models["big"].is_premium and not cat.models["cheap"].is_premium
    assert cat.models["cheap"].output_usd_per_mtok == 5.5
    assert cat.models["cheap"].cost_usd(input_tokens=1_000_000, output_tokens=2_000_000) == pytest.approx(12.0)
    assert cat.prices_as_of == "2025-01-01"
    assert cat.estimate("chore").input_tokens == 1000
    assert cat.estimate("nope").input_tokens == 100  # falls back to the "unknown" layer
    assert cat.capability_names == frozenset({"coding"})


def test_catalog_without_layers_estimates_zero_tokens() -> None:
    cat = parse_catalog("[models.a]\ntier = 1\ninput_usd_per_mtok = 1\noutput_usd_per_mtok = 1\n")
    est = cat.estimate("anything")
    assert (est.input_tokens, est.output_tokens) == (0, 0)


def test_packaged_catalog_has_the_default_tiers(catalog: Catalog) -> None:
    tiers = {mid: m.tier for mid, m in catalog.models.items()}
    assert tiers == {"haiku": 1, "minimax": 1, "glm": 1, "sonnet": 2, "codex": 2, "opus": 3, "gpt-5": 3}
    assert catalog.prices_as_of
    assert all(m.price_source for m in catalog.models.values())


_MODEL = 'provider = "p"\ninput_usd_per_mtok = 1\noutput_usd_per_mtok = 1\n'


@pytest.mark.parametrize(
    ("text", "fragments"),
    [
        ("not = [valid", ["cat.toml: not valid TOML"]),
        ('prices_as_of = "x"\n', ["cat.toml: missing or empty [models] table"]),
        ("models = 3\n", ["missing or empty [models] table"]),
        ("[models]\n", ["missing or empty [models] table"]),
        ("[models]\nbroken = 3\n", ["model 'broken'", "must be a table"]),
        (f"[models.m1]\ntier = 4\n{_MODEL}", ["model 'm1'", "tier must be an integer 1..3, got 4"]),
        (f"[models.m1]\ntier = 0\n{_MODEL}", ["model 'm1'", "tier must be an integer 1..3, got 0"]),
        (f"[models.m1]\ntier = true\n{_MODEL}", ["model 'm1'", "tier must be an integer 1..3, got True"]),
        (f'[models.m1]\ntier = "1"\n{_MODEL}', ["model 'm1'", "tier must be an integer 1..3, got '1'"]),
        (f"[models.m1]\n{_MODEL}", ["model 'm1'", "tier must be an integer 1..3, got None"]),
        (
            f"[models.m2]\ntier = 1\n{_MODEL}capabilities = {{ coding = 11 }}\n",
            ["model 'm2'", "capability 'coding' must be an integer 0..10, got 11"],
        ),
        (
            f"[models.m2]\ntier = 1\n{_MODEL}capabilities = {{ coding = 2.5 }}\n",
            ["model 'm2'", "capability 'coding' must be an integer 0..10, got 2.5"],
        ),
        (f"[models.m2]\ntier = 1\n{_MODEL}capabilities = 5\n", ["model 'm2'", "capabilities must be a table"]),
        (
            "[models.m3]\ntier = 2\ninput_usd_per_mtok = -1\noutput_usd_per_mtok = 1\n",
            ["model 'm3'", "input_usd_per_mtok must be a finite non-negative number, got -1"],
        ),
        (
            "[models.m3]\ntier = 2\ninput_usd_per_mtok = 1\n",
            ["model 'm3'", "output_usd_per_mtok must be a finite non-negative number, got None"],
        ),
        (
            '[models.m3]\ntier = 2\ninput_usd_per_mtok = 1\noutput_usd_per_mtok = "cheap"\n',
            ["model 'm3'", "output_usd_per_mtok must be a finite non-negative number, got 'cheap'"],
        ),
        (
            "[models.m3]\ntier = 2\ninput_usd_per_mtok = nan\noutput_usd_per_mtok = 1\n",
            ["model 'm3'", "input_usd_per_mtok must be a finite non-negative number, got nan"],
        ),
        (
            "[models.m3]\ntier = 2\ninput_usd_per_mtok = 1\noutput_usd_per_mtok = inf\n",
            ["model 'm3'", "output_usd_per_mtok must be a finite non-negative number, got inf"],
        ),
        (
            f"[models.ok]\ntier = 1\n{_MODEL}[layers.chore]\ninput_tokens = -5\noutput_tokens = 1\n",
            ["layer 'chore'", "input_tokens must be an integer 0..1000000000, got -5"],
        ),
        (f"[models.ok]\ntier = 1\n{_MODEL}[layers]\nchore = 7\n", ["layer 'chore'", "must be a table"]),
        (f"layers = 7\n[models.ok]\ntier = 1\n{_MODEL}", ["[layers] must be a table"]),
    ],
)
def test_catalog_errors_name_the_source_and_the_entry(text: str, fragments: list[str]) -> None:
    with pytest.raises(CatalogError) as info:
        parse_catalog(text, source="cat.toml")
    message = str(info.value)
    assert message.startswith("cat.toml:")
    for fragment in fragments:
        assert fragment in message


def test_load_catalog_from_a_missing_path_names_it() -> None:
    with pytest.raises(CatalogError, match=r"cannot read catalogue /nonexistent/cat\.toml"):
        load_catalog("/nonexistent/cat.toml")


def test_load_catalog_from_a_file_that_is_not_text_names_it(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe")
    with pytest.raises(CatalogError, match=r"cannot read catalogue .*c\.toml: not UTF-8 text"):
        load_catalog(path)


def test_load_catalog_from_a_file(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text(GOOD, encoding="utf-8")
    cat = load_catalog(path)
    assert cat.source == str(path)
    assert set(cat.models) == {"cheap", "big"}


def test_an_empty_catalog_is_refused() -> None:
    with pytest.raises(CatalogError, match="lists no models"):
        Catalog(models={}, source="x")

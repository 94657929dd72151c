"""SortedSeq against a plain sorted list: every operation, with sublists small enough to split and
merge many times over."""

from __future__ import annotations

from bisect import bisect_left, insort

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from router.sortedseq import SortedSeq

values = st.integers(min_value=-20, max_value=20)
# each step: add a value, or remove one (present or not)
steps = st.lists(st.tuples(st.booleans(), values), max_size=300)


def step(seq: SortedSeq[int], model: list[int], adding: bool, value: int) -> None:
    """One change to both: an add, or a remove (refused when the value is not there)."""
    if adding:
        seq.add(value)
        insort(model, value)
    elif value in model:
        seq.remove(value)
        model.remove(value)
    else:
        with pytest.raises(ValueError):
            seq.remove(value)


def replay(ops: list[tuple[bool, int]], load: int) -> tuple[SortedSeq[int], list[int]]:
    seq: SortedSeq[int] = SortedSeq(load=load)
    model: list[int] = []
    for adding, value in ops:
        step(seq, model, adding, value)
    return seq, model


@settings(max_examples=300)
@given(ops=steps, load=st.integers(min_value=2, max_value=6))
def test_adds_and_removes_keep_the_items_sorted_and_counted(ops: list[tuple[bool, int]], load: int) -> None:
    seq, model = replay(ops, load)
    assert list(seq) == model
    assert len(seq) == len(model)
    assert bool(seq) == bool(model)


@settings(max_examples=200)
@given(ops=steps, load=st.integers(min_value=2, max_value=6), probe=values)
def test_bisection_and_membership_agree_with_a_sorted_list(ops: list[tuple[bool, int]], load: int, probe: int) -> None:
    seq, model = replay(ops, load)
    assert seq.bisect_left(probe) == bisect_left(model, probe)
    assert (probe in seq) == (probe in model)


bounds = st.none() | values


@settings(max_examples=300)
@given(
    ops=steps,
    load=st.integers(min_value=2, max_value=6),
    low=bounds,
    high=bounds,
    inclusive=st.tuples(st.booleans(), st.booleans()),
)
def test_value_ranges_agree_with_a_sorted_list(
    ops: list[tuple[bool, int]], load: int, low: int | None, high: int | None, inclusive: tuple[bool, bool]
) -> None:
    seq, model = replay(ops, load)

    def within(x: int) -> bool:
        above = low is None or (x >= low if inclusive[0] else x > low)
        below = high is None or (x <= high if inclusive[1] else x < high)
        return above and below

    assert list(seq.irange(low, high, inclusive=inclusive)) == [x for x in model if within(x)]


@settings(max_examples=200)
@given(ops=steps, load=st.integers(min_value=2, max_value=6))
def test_indexing_agrees_with_a_sorted_list(ops: list[tuple[bool, int]], load: int) -> None:
    seq, model = replay(ops, load)
    for index in range(-len(model), len(model)):
        assert seq[index] == model[index]
    for beyond in (len(model), -len(model) - 1):
        with pytest.raises(IndexError):
            seq[beyond]


@settings(max_examples=200)
@given(ops=steps, load=st.integers(min_value=2, max_value=6), count=st.integers(min_value=-1, max_value=40))
def test_the_first_few_items_are_the_sorted_lists_first_few(ops: list[tuple[bool, int]], load: int, count: int) -> None:
    seq, model = replay(ops, load)
    first = seq.first(count)
    assert first == model[: max(count, 0)]
    first.append(99)  # a copy: changing it leaves the sequence alone
    assert list(seq) == model


@settings(max_examples=200)
@given(ops=steps, load=st.integers(min_value=2, max_value=6), probe=values)
def test_positions_stay_right_as_items_come_and_go(ops: list[tuple[bool, int]], load: int, probe: int) -> None:
    """Indexing and counting between every change: the position index, once built, is kept in step
    by adds and removes and rebuilt after sublists split, merge or vanish."""
    seq: SortedSeq[int] = SortedSeq(load=load)
    model: list[int] = []
    for adding, value in ops:
        step(seq, model, adding, value)
        if model:
            middle = len(model) // 2
            assert (seq[middle], seq[-1], seq[len(model) - 1]) == (model[middle], model[-1], model[-1])
        assert seq.bisect_left(probe) == bisect_left(model, probe)
    assert list(seq) == model and len(seq) == len(model)  # also when there was no change at all


@given(items=st.lists(values, max_size=200), load=st.integers(min_value=2, max_value=6))
def test_built_from_items_in_any_order(items: list[int], load: int) -> None:
    seq = SortedSeq(items, load=load)
    assert list(seq) == sorted(items)
    seq.add(0)
    assert list(seq) == sorted([*items, 0])


def assert_within_bounds(seq: SortedSeq[int], load: int) -> None:
    sizes = [len(sub) for sub in seq._lists]
    assert max(sizes) <= 2 * load
    assert len(sizes) == 1 or min(sizes) >= load // 2
    assert seq._maxes == [sub[-1] for sub in seq._lists]


def test_sublists_stay_within_their_bounds() -> None:
    """The layout that keeps an insertion or removal cheap: no sublist grows past 2 x load, and none
    but a lone one shrinks under load / 2, whatever the order of the changes."""
    load = 8
    seq: SortedSeq[int] = SortedSeq(load=load)
    for n in range(500):
        seq.add((n * 37) % 101)
    for n in range(0, 500, 3):
        seq.remove((n * 37) % 101)
    assert_within_bounds(seq, load)


@pytest.mark.parametrize("count", [1, 8, 9, 11, 12, 17, 100])
def test_a_sequence_built_at_once_is_laid_out_within_the_bounds_too(count: int) -> None:
    assert_within_bounds(SortedSeq(range(count), load=8), 8)


def test_tuples_sort_as_the_ledger_and_the_waiting_index_use_them() -> None:
    seq: SortedSeq[tuple[int, str]] = SortedSeq([(5, "b"), (5, "a"), (1, "z")])
    assert list(seq) == [(1, "z"), (5, "a"), (5, "b")]
    assert seq.bisect_left((5, "")) == 1
    assert seq[0] == (1, "z")


def test_a_load_under_two_is_refused() -> None:
    with pytest.raises(ValueError, match="load"):
        SortedSeq(load=1)

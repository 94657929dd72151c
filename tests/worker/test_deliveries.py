"""worker/deliveries.py: when an entry that keeps failing is retired, and which of its deliveries
were not its fault. Plain values: the accounting talks to nothing."""

from __future__ import annotations

import pytest

from streams.consumer import Entry
from worker.deliveries import UNKNOWN_ERROR, Deliveries

MAX = 3


def _entry(entry_id: str, deliveries: int) -> Entry:
    return Entry(entry_id, b"{}", deliveries)


@pytest.fixture
def book() -> Deliveries:
    return Deliveries(max_deliveries=MAX)


def test_an_entry_delivered_up_to_the_maximum_is_processed(book: Deliveries) -> None:
    book.failed([_entry("1-0", MAX)], ValueError("boom"))
    assert book.exhausted(_entry("1-0", MAX)) is None


def test_an_entry_delivered_past_the_maximum_is_retired_with_its_last_error(book: Deliveries) -> None:
    book.failed([_entry("1-0", 1)], KeyError("first"))
    book.failed([_entry("1-0", 2)], ValueError("boom"))
    assert book.exhausted(_entry("1-0", MAX + 1)) == f"failed after {MAX} deliveries: ValueError: boom"


def test_an_entry_past_the_maximum_with_no_error_known_is_retired_as_unknown(book: Deliveries) -> None:
    # the worker died on it: nothing was recorded
    assert book.exhausted(_entry("1-0", MAX + 2)) == f"failed after {MAX + 1} deliveries: {UNKNOWN_ERROR}"


def test_a_batch_mate_of_an_entry_known_to_fail_is_not_retired(book: Deliveries) -> None:
    book.failed([_entry("1-0", MAX + 1)], ValueError("boom"))
    assert book.exhausted(_entry("2-0", MAX + 1)) is None
    assert book.exhausted(_entry("1-0", MAX + 1)) is not None


def test_deliveries_redis_refused_do_not_count(book: Deliveries) -> None:
    entry = _entry("1-0", 1)
    for _ in range(2):  # two turns claimed it and had their calls refused
        book.claimed([entry])
        book.state_lost(blameless=[], redis_refused=True)
    assert book.exhausted(_entry("1-0", MAX + 2)) is None  # 5 deliveries, 2 excused: 3
    assert book.exhausted(_entry("1-0", MAX + 3)) == f"failed after {MAX} deliveries: {UNKNOWN_ERROR}"


def test_a_loss_of_state_not_on_redis_excuses_only_the_blameless(book: Deliveries) -> None:
    routed, ahead = _entry("1-0", 1), _entry("2-0", 1)
    book.claimed([routed, ahead])
    book.state_lost(blameless=[ahead.entry_id], redis_refused=False)
    assert book.exhausted(_entry(routed.entry_id, MAX + 1)) is not None
    assert book.exhausted(_entry(ahead.entry_id, MAX + 1)) is None


def test_each_loss_of_state_excuses_a_claimed_entry_once(book: Deliveries) -> None:
    entry = _entry("1-0", 1)
    book.claimed([entry])
    book.state_lost(blameless=[entry.entry_id], redis_refused=True)  # claimed and blameless: one delivery
    book.state_lost(blameless=[], redis_refused=True)  # no longer claimed: not excused again
    assert book.exhausted(_entry(entry.entry_id, MAX + 2)) is not None
    assert book.exhausted(_entry(entry.entry_id, MAX + 1)) is None


def test_acknowledging_forgets_failures_excuses_and_claims(book: Deliveries) -> None:
    culprit, excused = _entry("1-0", 1), _entry("2-0", 1)
    book.failed([culprit], ValueError("boom"))
    book.claimed([excused])
    book.state_lost(blameless=[excused.entry_id], redis_refused=False)
    book.claimed([culprit, excused])
    book.acknowledged([culprit, excused])
    # no failure known any more: a third entry is not a batch-mate of a culprit
    assert book.exhausted(_entry("3-0", MAX + 1)) is not None
    assert book.exhausted(_entry(excused.entry_id, MAX + 1)) is not None  # its excuse is gone
    book.state_lost(blameless=[], redis_refused=True)  # nothing claimed is left to excuse
    assert book.exhausted(_entry(culprit.entry_id, MAX + 1)) == f"failed after {MAX} deliveries: {UNKNOWN_ERROR}"


def test_a_new_leader_counts_every_delivery(book: Deliveries) -> None:
    entry = _entry("1-0", 1)
    book.claimed([entry])
    book.state_lost(blameless=[], redis_refused=True)
    book.handed_over()
    assert book.exhausted(_entry(entry.entry_id, MAX + 1)) is not None


def test_a_reclaim_keeps_only_the_excuses_of_entries_still_pending(book: Deliveries) -> None:
    kept, gone = _entry("1-0", 1), _entry("2-0", 1)
    book.claimed([kept, gone])
    book.state_lost(blameless=[], redis_refused=True)
    book.prune({kept.entry_id})
    assert book.exhausted(_entry(kept.entry_id, MAX + 1)) is None
    assert book.exhausted(_entry(gone.entry_id, MAX + 1)) is not None

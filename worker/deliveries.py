"""The routing loop's delivery accounting: when an entry that keeps failing is retired.

Redis counts every delivery of a pending entry (XPENDING's times delivered). The loop retires an
entry, to the dead letters with its last error, once it has been delivered more than
ROUTER_MAX_DELIVERIES times. Not every delivery is the entry's fault, though, so the loop keeps,
per entry:

- whether it has claimed the entry and not yet had it acknowledged;
- the deliveries that ended through no fault of the entry ("excused"): Redis refused or dropped
  this worker's calls (out of memory, a wrong-typed key, a lost connection), or the entry was
  claimed ahead and never routed. Those do not count towards the maximum: a long Redis outage
  would otherwise dead-letter valid events;
- the last unexpected error processing it raised, for its dead letter, and to tell the entry that
  failed from its batch-mates, whose delivery counts grow with the culprit's retries.

Everything is forgotten as an entry is acknowledged; excuses are kept by the leader only (a
successor counts those deliveries normally) and pruned to what is still pending at every reclaim.

Pure bookkeeping, no Redis: it lives with the process whose policy it is (the routing loop, and
its ROUTER_MAX_DELIVERIES) rather than in streams/, which talks to Redis; the loop tells it what
happened, from what its calls to Redis returned.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence

from streams.consumer import Entry

UNKNOWN_ERROR = "unknown error (the worker may have crashed on it)"


class Deliveries:
    """What the routing loop knows of the deliveries of the entries it claims, and the rule that
    retires an entry from it."""

    def __init__(self, *, max_deliveries: int) -> None:
        self.max_deliveries = max_deliveries
        self._claimed: dict[str, None] = {}  # claimed and not yet acknowledged (a dict keeps the order)
        self._excused: dict[str, int] = {}  # entry id -> deliveries that were not its fault
        self._failures: dict[str, str] = {}  # entry id -> last unexpected error

    def claimed(self, entries: Iterable[Entry]) -> None:
        """The loop took these entries (read or reclaimed): they are its own until acknowledged."""
        self._claimed.update(dict.fromkeys(entry.entry_id for entry in entries))

    def failed(self, entries: Iterable[Entry], exc: BaseException) -> None:
        """Processing these entries raised `exc` unexpectedly (a bug, a broken scorer): blame them."""
        error = f"{type(exc).__name__}: {exc}"
        for entry in entries:
            self._failures[entry.entry_id] = error

    def acknowledged(self, entries: Sequence[Entry]) -> None:
        """These entries are settled: forget everything about them."""
        # failures and excuses are rare: their dicts are usually empty, and a busy worker runs this
        # for every entry, so they are only looked through when they hold anything
        for bookkeeping in (self._claimed, self._failures, self._excused):
            if bookkeeping:
                for entry in entries:
                    bookkeeping.pop(entry.entry_id, None)

    def exhausted(self, entry: Entry) -> str | None:
        """Why the entry is retired (its dead letter's error), or None if it may be processed."""
        if entry.deliveries <= self.max_deliveries:  # the usual case: excuses only lower it
            return None
        deliveries = entry.deliveries - self._excused.get(entry.entry_id, 0)
        if deliveries <= self.max_deliveries:
            return None
        last = self._failures.get(entry.entry_id)
        if last is None and self._failures:
            # a batch-mate of an entry known to fail: its deliveries count the culprit's retries
            return None
        return f"failed after {deliveries - 1} deliveries: {last or UNKNOWN_ERROR}"

    def state_lost(self, *, blameless: Iterable[str], redis_refused: bool) -> None:
        """The loop forgot its ledger: every entry it claimed and had not yet had acknowledged will
        be delivered again. The `blameless` ones (claimed ahead and never routed, or in a step Redis
        refused) are excused that delivery in any case; with `redis_refused` (Redis refused or
        dropped one of the loop's calls) every claimed entry is, each once."""
        excused = {*self._claimed, *blameless} if redis_refused else blameless
        for entry_id in excused:
            self._excused[entry_id] = self._excused.get(entry_id, 0) + 1
        self._claimed.clear()

    def handed_over(self) -> None:
        """Another worker leads now: what this one claimed is its successor's to reclaim, and the
        successor counts those deliveries as they are."""
        self._excused.clear()

    def prune(self, pending: Collection[str]) -> None:
        """A full reclaim found these entries pending: excuses of any other (acknowledged by a
        step whose reply was lost, say) are dropped."""
        self._excused = {entry_id: n for entry_id, n in self._excused.items() if entry_id in pending}

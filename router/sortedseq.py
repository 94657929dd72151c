"""A sorted sequence: the few operations the slot ledger, the waiting index and the EV window need.

The layout is the one `sortedcontainers.SortedList` made well known: a list of sorted sublists of
about `load` items, plus each sublist's largest item, so an insertion or removal bisects two short
lists and moves at most `2 x load` pointers, however long the sequence. It lives here rather than
being imported because the router's hot path calls it several times per event: as part of
`router/` it is compiled by mypyc with the rest (setup.py), where calling the third-party
pure-Python list cost a compiled worker a sixth of its instructions per event (docs/benchmarks.md).
Ranges are found by value (`irange`, bisection only); positions, which only the EV window's
percentiles and the count of stale slots ask for, by a Fenwick tree over the sublists' lengths.
Only what the router uses is here: add, remove, length, membership, iteration, indexing, the
first few items, a count of smaller items and ranges by value.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Iterator
from itertools import chain, islice
from typing import Any, Final, Generic, Protocol, TypeVar


class _Comparable(Protocol):
    def __lt__(self, other: Any, /) -> bool: ...


T = TypeVar("T", bound=_Comparable)
# Bound once: compiled, a name imported from a module is looked up in this module's dict at every
# call, and the sequences bisect a few times per event.
bisect_left: Final = bisect.bisect_left
bisect_right: Final = bisect.bisect_right
insort: Final = bisect.insort
DEFAULT_LOAD = 1000


class SortedSeq(Generic[T]):
    """Items in ascending order (duplicates kept). Sublists hold between load / 2 and 2 x load
    items (fewer only when the whole sequence is that short)."""

    def __init__(self, items: Iterable[T] = (), *, load: int = DEFAULT_LOAD) -> None:
        if load < 2:
            raise ValueError("load must be at least 2")
        self._load = load
        values = sorted(items)
        self._lists: list[list[T]] = [values[i : i + load] for i in range(0, len(values), load)]
        if len(self._lists) > 1 and len(self._lists[-1]) < load // 2:
            short = self._lists.pop()  # no short sublist at the end: join it to the one before
            self._lists[-1].extend(short)
        self._maxes: list[T] = [sub[-1] for sub in self._lists]
        self._len = len(values)
        # Positions (indexing, counting smaller items) come from a Fenwick tree over the sublists'
        # lengths: built on the first such question, kept in step by add and remove (O(log k) for
        # k sublists), dropped when sublists split, merge or vanish. Empty: not built.
        self._tree: list[int] = []

    def __len__(self) -> int:
        return self._len

    def __bool__(self) -> bool:
        return self._len > 0

    def __iter__(self) -> Iterator[T]:
        return chain.from_iterable(self._lists)

    def __contains__(self, value: Any) -> bool:
        pos = bisect_left(self._maxes, value)
        if pos == len(self._maxes):
            return False
        sub = self._lists[pos]
        return bool(sub[bisect_left(sub, value)] == value)

    def __repr__(self) -> str:
        return f"SortedSeq({list(self)!r})"

    def __getitem__(self, index: int) -> T:
        if index == 0 and self._lists:  # the usual question: the first item
            return self._lists[0][0]
        if index < 0:
            index += self._len
        if not 0 <= index < self._len:
            raise IndexError("SortedSeq index out of range")
        pos, offset = self._locate(index)
        return self._lists[pos][offset]

    def add(self, value: T) -> None:
        maxes = self._maxes
        if not maxes:
            self._lists.append([value])
            maxes.append(value)
            self._len = 1
            return
        # the usual case, one sublist, takes one comparison rather than a search of the maxima
        pos = bisect_right(maxes, value) if len(maxes) > 1 else (0 if value < maxes[0] else 1)
        if pos == len(maxes):  # beyond every item: append to the last sublist
            pos -= 1
            self._lists[pos].append(value)
            maxes[pos] = value
        else:
            insort(self._lists[pos], value)
        self._len += 1
        if len(self._lists[pos]) > 2 * self._load:
            self._split(pos)
        elif self._tree:
            self._grow(pos, 1)

    def remove(self, value: T) -> None:
        """Remove one item equal to `value`; ValueError if there is none."""
        maxes = self._maxes
        pos = 0 if len(maxes) == 1 else bisect_left(maxes, value)  # one sublist: nothing to search
        if pos == len(maxes):
            raise ValueError(f"{value!r} is not in the sequence")
        sub = self._lists[pos]
        # the best-first orders (waiting tasks, free slots) mostly give up their first item
        offset = 0 if sub[0] == value else bisect_left(sub, value)
        if offset == len(sub) or sub[offset] != value:
            raise ValueError(f"{value!r} is not in the sequence")
        del sub[offset]
        self._len -= 1
        if not sub:
            del self._lists[pos]
            del maxes[pos]
            self._tree = []
            return
        if offset == len(sub):
            maxes[pos] = sub[-1]
        if len(sub) < self._load // 2 and len(self._lists) > 1:
            self._merge(pos)
        elif self._tree:
            self._grow(pos, -1)

    def first(self, count: int) -> list[T]:
        """The first `count` items (all of them if there are fewer): usually a slice of the first
        sublist, which is cheaper than iterating (the ledger reads the first few ids of a pool for
        every decision's explanation)."""
        lists = self._lists
        if not lists or count <= 0:
            return []
        if count <= len(lists[0]):
            return lists[0][:count]
        return list(islice(chain.from_iterable(lists), count))

    def bisect_left(self, value: T) -> int:
        """The index where `value` would go before any equal items (the count of smaller items)."""
        pos = bisect_left(self._maxes, value)
        if pos == len(self._maxes):
            return self._len
        return self._start_of(pos) + bisect_left(self._lists[pos], value)

    def irange(
        self, minimum: T | None = None, maximum: T | None = None, *, inclusive: tuple[bool, bool] = (True, True)
    ) -> Iterator[T]:
        """Items between `minimum` and `maximum` (None: unbounded on that side), each bound
        included or not as `inclusive` says. Found by bisection alone (no positions): the cost is
        the logarithm of the length plus the items returned."""
        lists, maxes = self._lists, self._maxes
        if not maxes:
            return iter(())
        first_pos, first_off = 0, 0
        if minimum is not None:
            after_min = bisect_left if inclusive[0] else bisect_right
            first_pos = after_min(maxes, minimum)
            if first_pos == len(maxes):
                return iter(())
            first_off = after_min(lists[first_pos], minimum)
        end_pos, end_off = len(lists) - 1, len(lists[-1])
        if maximum is not None:
            before_max = bisect_right if inclusive[1] else bisect_left
            pos = before_max(maxes, maximum)
            if pos < len(maxes):
                end_pos, end_off = pos, before_max(lists[pos], maximum)
        if (end_pos, end_off) <= (first_pos, first_off):
            return iter(())
        if first_pos == end_pos:
            return iter(lists[first_pos][first_off:end_off])
        middle = chain.from_iterable(lists[first_pos + 1 : end_pos])
        return chain(lists[first_pos][first_off:], middle, lists[end_pos][:end_off])

    # -- layout --------------------------------------------------------------------------------

    def _locate(self, index: int) -> tuple[int, int]:
        """(sublist, offset in it) of item `index` (0 <= index < len), descending the tree."""
        if index < len(self._lists[0]):  # short sequences (the EV window's, say) have one sublist
            return 0, index
        tree = self._built_tree()
        pos, rest = 0, index
        step = 1 << (len(tree) - 1).bit_length()
        while step:
            nxt = pos + step
            if nxt < len(tree) and tree[nxt] <= rest:
                pos = nxt
                rest -= tree[nxt]
            step >>= 1
        return pos, rest  # pos sublists hold `index - rest` items before this one

    def _start_of(self, pos: int) -> int:
        """Items in the sublists before sublist `pos`."""
        if pos == 0:  # short sequences have one sublist: no tree needed
            return 0
        tree = self._built_tree()
        total = 0
        while pos > 0:
            total += tree[pos]
            pos -= pos & -pos
        return total

    def _built_tree(self) -> list[int]:
        """The Fenwick tree (1-based: tree[i] covers sublists i - lowbit(i) .. i - 1)."""
        if not self._tree:
            tree = [0] + [len(sub) for sub in self._lists]
            for i in range(1, len(tree)):
                parent = i + (i & -i)
                if parent < len(tree):
                    tree[parent] += tree[i]
            self._tree = tree
        return self._tree

    def _grow(self, pos: int, delta: int) -> None:
        """Sublist `pos` gained (or lost) `delta` items: update the tree."""
        tree = self._tree
        i = pos + 1
        while i < len(tree):
            tree[i] += delta
            i += i & -i

    def _split(self, pos: int) -> None:
        sub = self._lists[pos]
        upper = sub[self._load :]
        del sub[self._load :]
        self._lists.insert(pos + 1, upper)
        self._maxes[pos] = sub[-1]
        self._maxes.insert(pos + 1, upper[-1])
        self._tree = []

    def _merge(self, pos: int) -> None:
        """Join a short sublist to a neighbour (splitting the result again if it grew too long)."""
        left = pos - 1 if pos > 0 else pos
        joined = self._lists[left] + self._lists[left + 1]
        self._lists[left] = joined
        self._maxes[left] = joined[-1]
        del self._lists[left + 1]
        del self._maxes[left + 1]
        self._tree = []
        if len(joined) > 2 * self._load:
            self._split(left)

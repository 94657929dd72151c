"""streams/consumer.py's GroupReaders (several streams read by one consumer of one group: the
recorder's decisions and usage) and GroupReader's reclaim options, data_of and trim.

The reading runs on fakeredis; trimming (its script reads XINFO GROUPS), idle times and a stream
deleted under its group run on the real Redis of tests/conftest.py, marked integration.
"""

from __future__ import annotations

from collections.abc import Iterator

import fakeredis
import orjson
import pytest
import redis

from streams.codec import as_text
from streams.consumer import GroupReader, GroupReaders

GROUP = "recorder"


@pytest.fixture
def fr() -> Iterator[fakeredis.FakeRedis]:
    r = fakeredis.FakeRedis()
    yield r
    r.flushall()


def _readers(r: redis.Redis, prefix: str = "", *, consumer: str = "c1", count: int = 10) -> GroupReaders:
    streams = {"decisions": f"{prefix}decisions", "usage": f"{prefix}usage"}
    readers = GroupReaders(r, streams=streams, group=GROUP, consumer=consumer, count=count)
    readers.ensure_groups()
    return readers


def _add(r: redis.Redis, stream: str, *docs: dict[str, object]) -> list[str]:
    return [as_text(r.xadd(stream, {"data": orjson.dumps(doc)})) for doc in docs]


def _pending(r: redis.Redis, stream: str) -> int:
    return int(r.xpending(stream, GROUP)["pending"])


def test_read_takes_both_streams_in_one_call_by_name(fr: fakeredis.FakeRedis) -> None:
    readers = _readers(fr)
    decided = _add(fr, "decisions", {"d": 1}, {"d": 2})
    used = _add(fr, "usage", {"u": 1})
    got = readers.read(block_ms=0)
    assert got is not None
    assert [e.entry_id for e in got["decisions"]] == decided
    assert [e.entry_id for e in got["usage"]] == used
    assert orjson.loads(got["usage"][0].data or b"") == {"u": 1}


def test_read_names_every_stream_even_with_nothing_new(fr: fakeredis.FakeRedis) -> None:
    readers = _readers(fr)
    used = _add(fr, "usage", {"u": 1})
    got = readers.read(block_ms=0)
    assert got is not None
    assert got["decisions"] == []
    assert [e.entry_id for e in got["usage"]] == used
    assert readers.read(block_ms=0) == {"decisions": [], "usage": []}


def test_acknowledge_writes_dead_letters_and_acks_only_what_it_is_given(fr: fakeredis.FakeRedis) -> None:
    readers = _readers(fr)
    first, second = _add(fr, "decisions", {"d": 1}, {"d": 2})
    _add(fr, "usage", {"u": 1})
    readers.read(block_ms=0)
    dead = {"source_id": first, "raw": None, "error": "bad", "stream": "decisions"}
    readers.acknowledge({"decisions": [first], "usage": []}, dead_letters=[dead], dead_stream="dead")
    [(_, fields)] = fr.xrange("dead")
    assert orjson.loads(fields[b"data"]) == dead
    assert [as_text(p["message_id"]) for p in fr.xpending_range("decisions", GROUP, "-", "+", 10)] == [second]
    assert _pending(fr, "usage") == 1


def test_reclaim_takes_over_a_dead_consumers_entries_stream_by_stream(fr: fakeredis.FakeRedis) -> None:
    dead_one = _readers(fr, consumer="gone")
    decided = _add(fr, "decisions", {"d": 1}, {"d": 2}, {"d": 3})
    used = _add(fr, "usage", {"u": 1})
    dead_one.read(block_ms=0)
    reclaimed = list(_readers(fr, consumer="c2", count=2).reclaim(min_idle_ms=0))
    assert [(name, [e.entry_id for e in entries]) for name, entries in reclaimed] == [
        ("decisions", decided[:2]),
        ("decisions", decided[2:]),
        ("usage", used),
    ]
    owners = {as_text(p["consumer"]) for p in fr.xpending_range("decisions", GROUP, "-", "+", 10)}
    assert owners == {"c2"}


def test_reclaim_without_delivery_counts_says_one_and_with_them_the_count(fr: fakeredis.FakeRedis) -> None:
    reader = GroupReader(fr, stream="s", group=GROUP, consumer="c", count=10, block_ms=0)
    reader.ensure_group()
    _add(fr, "s", {"x": 1})
    reader.read(block=False)
    list(reader.reclaim())  # a second delivery
    assert [e.deliveries for batch in reader.reclaim(count_deliveries=False) for e in batch] == [1]
    assert [e.deliveries for batch in reader.reclaim() for e in batch] == [4]


def test_data_of_reads_one_entry_again(fr: fakeredis.FakeRedis) -> None:
    reader = GroupReader(fr, stream="s", group=GROUP, consumer="c", count=10, block_ms=0)
    [entry_id] = _add(fr, "s", {"x": 1})
    assert orjson.loads(reader.data_of(entry_id) or b"") == {"x": 1}
    fr.xdel("s", entry_id)
    assert reader.data_of(entry_id) is None


# -- on the real Redis --------------------------------------------------------------------------


@pytest.mark.integration
def test_reclaim_leaves_entries_idle_for_less_than_min_idle(r: redis.Redis, prefix: str) -> None:
    _add(r, f"{prefix}decisions", {"d": 1})
    _readers(r, prefix, consumer="alive").read(block_ms=0)
    peer = _readers(r, prefix, consumer="peer")
    assert list(peer.reclaim(min_idle_ms=60_000)) == []  # read a moment ago: its reader is alive
    assert [name for name, _ in peer.reclaim(min_idle_ms=0)] == ["decisions"]


@pytest.mark.integration
def test_read_says_none_once_a_stream_is_deleted_and_ensure_groups_restores_it(r: redis.Redis, prefix: str) -> None:
    readers = _readers(r, prefix)
    r.delete(f"{prefix}usage")
    assert readers.read(block_ms=0) is None
    readers.ensure_groups()
    used = _add(r, f"{prefix}usage", {"u": 2})
    assert [e.entry_id for e in (readers.read(block_ms=0) or {})["usage"]] == used


@pytest.mark.integration
def test_trim_deletes_only_acknowledged_entries_within_keep_and_limit(r: redis.Redis, prefix: str) -> None:
    readers = _readers(r, prefix, count=100)
    ids = _add(r, f"{prefix}decisions", *({"d": i} for i in range(10)))
    readers.read(block_ms=0)
    readers.acknowledge({"decisions": ids[:6]}, dead_letters=[], dead_stream=f"{prefix}dead")
    reader = readers.readers["decisions"]
    assert reader.trim_acknowledged(keep=0, limit=2) == 2  # at most `limit` a call
    assert reader.trim_acknowledged(keep=7, limit=100) == 1  # never the newest `keep`
    readers.trim(keep=0, limit=100)
    assert [as_text(i) for i, _ in r.xrange(f"{prefix}decisions")] == ids[6:]  # the pending ones stay

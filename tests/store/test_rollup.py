"""The hourly rollup equals an aggregation of the decision and usage tables, however the records
arrive: shuffled, redelivered, usage before its decision, two writers at once; after the migration's
backfill; after retention."""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis
from sqlalchemy import Engine, select, text
from support.processes import wait_for

from store.db import make_engine
from store.migrate import upgrade
from store.records import Row, decision_row, usage_row
from store.rollup import raw_hourly
from store.schema import HOURLY_COUNTS, HOURLY_SUMS, decisions, hourly, usage
from store.writer import delete_before, insert_decisions, insert_usage
from streams.keys import Keys
from worker.recorder import Recorder

pytestmark = pytest.mark.integration

BASE = datetime(2031, 5, 6, 9, 0, tzinfo=UTC)
RECORDED = datetime(2031, 5, 7, tzinfo=UTC)
MODELS = [("haiku", 1), ("sonnet", 2), ("opus", 3)]
LAYERS = ["chore", "design", "strategy"]

Summed = dict[tuple[datetime, str, str], tuple[Any, ...]]


def _decision_doc(rng: random.Random, i: int, tag: str = "d") -> dict[str, Any]:
    outcome = rng.choices(["assigned", "await_slot", "unroutable"], weights=[8, 1, 1])[0]
    model, tier = rng.choice(MODELS)
    assigned = outcome == "assigned"
    at = BASE + timedelta(minutes=rng.randrange(5 * 60), seconds=rng.random() * 60)
    return {
        "decision_id": f"{tag}-{i}",
        "task_id": f"t-{i}",
        "outcome": outcome,
        "reason_code": "cheapest_capable",
        "reason": "random",
        "chosen_slot_id": f"{model}-1" if assigned else None,
        "chosen_model": model if assigned else None,
        "chosen_tier": tier if assigned else None,
        "account": "default",
        "layer": rng.choice(LAYERS),
        "priority": 50,
        "ev": rng.random(),
        "ev_p50": None if rng.random() < 0.2 else 0.5,
        "ev_p90": 0.9,
        "est_cost_usd": None if rng.random() < 0.2 else round(rng.uniform(0.001, 0.5), 6),
        "dry_run": rng.random() < 0.1,
        "decided_at": at.timestamp() * 1000,
        "event_id": f"e-{tag}-{i}",
        "policy_version": "test",
        "alternatives": [],
    }


def _usage_doc(
    rng: random.Random, event: str, decision: dict[str, Any] | None, decision_id: str | None
) -> dict[str, Any]:
    reported = (decision["decided_at"] if decision else BASE.timestamp() * 1000) + rng.randrange(1, 600_000)
    return {
        "event_id": event,
        "decision_id": decision_id,
        "task_id": decision["task_id"] if decision else "t-x",
        "slot_id": "s-1",
        "model": (decision["chosen_model"] or "haiku") if decision else "haiku",
        "cost_usd": None if rng.random() < 0.2 else round(rng.uniform(0.001, 0.5), 6),
        "at": reported,
    }


def _records(rng: random.Random, n: int, tag: str = "d") -> list[tuple[str, Row]]:
    """Decisions and usage reports, some reported twice for one decision, some for no decision or
    for one never recorded."""
    items: list[tuple[str, Row]] = []
    for i in range(n):
        doc = _decision_doc(rng, i, tag)
        items.append(("decision", decision_row(doc, stream_id=None, recorded_at=RECORDED)))
        for copy in range(rng.choices([0, 1, 2], weights=[4, 5, 1])[0]):
            report = _usage_doc(rng, f"u-{tag}-{i}-{copy}", doc, doc["decision_id"])
            items.append(("usage", usage_row(report, stream_id=None, recorded_at=RECORDED)))
    for j in range(n // 10):
        orphan = _usage_doc(rng, f"u-{tag}-orphan-{j}", None, None if j % 2 else f"{tag}-never-{j}")
        items.append(("usage", usage_row(orphan, stream_id=None, recorded_at=RECORDED)))
    return items


def _write(engine: Engine, batch: list[tuple[str, Row]]) -> None:
    """As the recorder does: one transaction, decisions first, then usage."""
    with engine.begin() as conn:
        insert_decisions(conn, [row for kind, row in batch if kind == "decision"])
        insert_usage(conn, [row for kind, row in batch if kind == "usage"])


def _rollup(engine: Engine) -> Summed:
    with engine.connect() as conn:
        return _keyed(conn.execute(select(hourly)))


def _raw(engine: Engine) -> Summed:
    """What the rollup should hold, aggregated afresh from the tables, money compared to 1e-9."""
    with engine.connect() as conn:
        return {
            key: (*v[: len(HOURLY_COUNTS)], *(pytest.approx(x, abs=1e-9) for x in v[len(HOURLY_COUNTS) :]))
            for key, v in _keyed(raw_hourly(conn)).items()
        }


def _keyed(rows: Any) -> Summed:
    """(hour, model, layer) -> the counts, then the sums, in the rollup's column order."""
    return {
        (row.hour, row.chosen_model, row.layer): (
            *(int(getattr(row, name)) for name in HOURLY_COUNTS),
            *(float(getattr(row, name)) for name in HOURLY_SUMS),
        )
        for row in rows
    }


def _assert_rollup_matches(engine: Engine) -> None:
    expected = _raw(engine)
    assert expected, "the scenario should roll something up"
    assert _rollup(engine) == expected


@pytest.mark.parametrize("seed", range(4))
def test_rollup_equals_raw_after_random_interleavings(engine: Engine, seed: int) -> None:
    rng = random.Random(seed)
    items = _records(rng, 300)
    # Redeliveries: a third of the records come again, later, in another batch.
    items += rng.sample(items, len(items) // 3)
    rng.shuffle(items)  # so a report often comes before its decision
    batches, start = [], 0
    while start < len(items):
        size = rng.randint(1, 40)
        batches.append(items[start : start + size])
        start += size
    for i, batch in enumerate(batches):
        _write(engine, batch)
        if rng.random() < 0.1:
            _write(engine, batch)  # a whole batch again: committed, then crashed before the ack
        if i % 10 == 0:
            _assert_rollup_matches(engine)
    _assert_rollup_matches(engine)


ADDED_AFTER_0001 = ("position", "eta_s")  # migration 0003_queue_place


def test_backfill_rolls_up_what_was_stored_before_the_upgrade(database_url: str) -> None:
    engine = make_engine(database_url)
    try:
        upgrade(engine, "0001")
        rows = _records(random.Random(7), 200)
        reported: set[str] = set()
        with engine.begin() as conn:  # straight into the tables, as revision 0001's recorder did
            for kind, row in rows:
                if kind == "decision":  # without the columns later revisions added
                    conn.execute(decisions.insert(), [{k: v for k, v in row.items() if k not in ADDED_AFTER_0001}])
                elif row["decision_id"] not in reported:  # the unique key keeps one report a decision
                    reported.add(row["decision_id"])
                    conn.execute(usage.insert(), [row])
        upgrade(engine)
        _assert_rollup_matches(engine)
        _write(engine, _records(random.Random(8), 50, tag="after"))  # and it is kept from there on
        _assert_rollup_matches(engine)
    finally:
        engine.dispose()


def test_retention_deletes_whole_hours_and_keeps_the_rollup_equal(engine: Engine) -> None:
    rng = random.Random(3)
    items = _records(rng, 300)
    for start in range(0, len(items), 50):
        _write(engine, items[start : start + 50])
    cutoff = BASE + timedelta(hours=2, minutes=25)  # mid-hour: decisions in 11:00-11:25 are kept
    gone_decisions, _, gone_rows = delete_before(engine, cutoff)
    assert gone_decisions > 0 and gone_rows > 0
    with engine.connect() as conn:
        oldest = conn.execute(select(decisions.c.decided_at).order_by(decisions.c.decided_at).limit(1)).scalar_one()
        hours = set(conn.execute(select(hourly.c.hour)).scalars())
    assert BASE + timedelta(hours=2) <= oldest < cutoff
    assert min(hours) == BASE + timedelta(hours=2)
    _assert_rollup_matches(engine)


def test_recorder_keeps_the_rollup_with_usage_read_before_its_decision(
    r: redis.Redis,
    prefix: str,
    engine: Engine,
    make_recorder: Callable[..., Recorder],
    kit: Any,
    add: Callable[..., None],
) -> None:
    rng = random.Random(11)
    keys = Keys(prefix)
    docs = [_decision_doc(rng, i) for i in range(60)]
    reports = [_usage_doc(rng, f"u-{i}", doc, doc["decision_id"]) for i, doc in enumerate(docs)]
    add(r, keys.usage, reports)
    recorder = make_recorder()
    kit.drain_until(recorder, lambda: _count(engine, usage) == 60, what="the usage reports")
    assert _rollup(engine) == {}  # no decision yet: nothing to count
    add(r, keys.decisions, docs + docs[:10])  # and ten redelivered
    kit.drain_until(recorder, lambda: kit.count() == 60, what="the decisions")
    _assert_rollup_matches(engine)
    assert sum(v[1] for v in _rollup(engine).values()) > 0  # the reports' costs count as actual


def _count(engine: Engine, table: Any) -> int:
    with engine.connect() as conn:
        return len(conn.execute(select(table)).all())


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)  # SQLite has one writer at a time
@pytest.mark.parametrize("first", ["decision", "usage"])
def test_two_writers_count_a_decision_and_its_usage_once(engine: Engine, first: str) -> None:
    """A decision and its report in two transactions that overlap: whichever looks up second
    waits for the first to commit, so exactly one of them counts the actual cost."""
    rng = random.Random(5)
    doc = {
        **_decision_doc(rng, 1),
        "outcome": "assigned",
        "chosen_model": "opus",
        "chosen_tier": 3,
        "chosen_slot_id": "o-1",
        "dry_run": False,
        "est_cost_usd": 0.25,
        "ev": 0.9,
        "ev_p50": 0.5,
    }
    report = {**_usage_doc(rng, "u-1", doc, doc["decision_id"]), "cost_usd": 0.4}
    rows = {
        "decision": [("decision", decision_row(doc, stream_id=None, recorded_at=RECORDED))],
        "usage": [("usage", usage_row(report, stream_id=None, recorded_at=RECORDED))],
    }
    second = "usage" if first == "decision" else "decision"
    pid: list[int] = []

    def other_writer() -> None:
        with engine.begin() as conn:
            pid.append(int(conn.exec_driver_sql("SELECT pg_backend_pid()").scalar_one()))
            insert_decisions(conn, [row for kind, row in rows[second] if kind == "decision"])
            insert_usage(conn, [row for kind, row in rows[second] if kind == "usage"])

    with engine.connect() as conn, conn.begin():
        insert_decisions(conn, [row for kind, row in rows[first] if kind == "decision"])
        insert_usage(conn, [row for kind, row in rows[first] if kind == "usage"])
        thread = threading.Thread(target=other_writer)
        thread.start()
        wait_for(lambda: pid and _waiting_on_lock(engine, pid[0]), what="the second writer to wait for the lock")
    thread.join(timeout=20)
    assert not thread.is_alive()
    rollup = _rollup(engine)
    assert list(rollup.values()) == [(1, 1, 0, 1, 1, 0, pytest.approx(0.4), pytest.approx(0.0), 0.25)]
    _assert_rollup_matches(engine)


def _waiting_on_lock(engine: Engine, pid: int) -> bool:
    query = text("SELECT count(*) FROM pg_locks WHERE pid = :pid AND locktype = 'advisory' AND NOT granted")
    with engine.connect() as conn:
        return bool(conn.execute(query, {"pid": pid}).scalar_one())

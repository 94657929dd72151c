"""bench/workload.py: the benchmark's workloads are seeded, and the mixed one keeps its backlog."""

from __future__ import annotations

from collections import Counter

import orjson
import pytest

from bench.workload import MIXED, UNIFORM, make
from router.catalog import load_catalog
from streams.schema import parse_event


def test_the_same_seed_gives_the_same_events_and_another_seed_others() -> None:
    first, again, other = make(MIXED, seed=7), make(MIXED, seed=7), make(MIXED, seed=8)
    assert first.warm_up() == again.warm_up()
    assert first.measured(500) == again.measured(500)
    assert make(MIXED, seed=7).measured(500) != other.measured(500)


def test_mixed_has_600_slots_of_7_models_on_2_accounts_and_a_standing_backlog() -> None:
    workload = make(MIXED)
    pools = set(workload.slots.values())
    assert len(workload.slots) == 600
    assert len({model for model, _ in pools}) == 7 and len({account for _, account in pools}) == 2
    assert len(workload.warm_up()) == 600 + 3_000


def test_mixed_events_are_valid_and_take_out_of_the_backlog_what_they_add() -> None:
    workload = make(MIXED, outcomes=True)
    workload.warm_up()
    events = workload.measured(20_000)
    models = frozenset(load_catalog().models)
    for doc in [
        *events,
        {
            **events[0],
            "type": "slot.free",
            "slot_id": "haiku-000",
            "model": "haiku",
            "completed": workload.completed("bt1"),
        },
    ]:
        parse_event(orjson.dumps(doc), models=models, max_bytes=64 * 1024)  # raises if invalid
    kinds = Counter(doc["type"] for doc in events)
    assert set(kinds) == {"task.pending", "slot.free", "slot.heartbeat", "task.cancelled", "quota.utilisation"}
    added = kinds["task.pending"] - kinds["slot.free"] - kinds["task.cancelled"]
    assert abs(added) < 0.02 * len(events)  # tasks in = tasks freed slots take + tasks cancelled
    requirements = {orjson.dumps(doc["requires"]) for doc in events if doc["type"] == "task.pending"}
    assert len(requirements) >= 8


def test_a_cancellation_names_a_task_sent_well_before_it() -> None:
    workload = make(MIXED)
    workload.warm_up()
    sent: list[str] = []
    for doc in workload.measured(5_000):
        if doc["type"] == "task.pending":
            sent.append(doc["task_id"])
        elif doc["type"] == "task.cancelled":
            number = int(doc["task_id"][2:])
            assert number <= 3_600 + len(sent) - 500


def test_uniform_is_pairs_of_a_task_and_a_free_on_haiku() -> None:
    events = make(UNIFORM).measured(10)
    assert [doc["type"] for doc in events] == ["task.pending", "slot.free"] * 5
    assert {doc["model"] for doc in events if doc["type"] == "slot.free"} == {"haiku"}


def test_an_unknown_workload_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown workload"):
        make("zipf")

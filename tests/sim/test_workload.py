"""The row-to-task mapping: seeded, explicit, and scaled to the offered load."""

from __future__ import annotations

import pytest

from sim.traces import Arrival, load_difficulties, load_trace
from sim.workload import DIFFICULTY, TaskMapping, build_tasks


def test_same_seed_same_tasks() -> None:
    arrivals = load_trace("azure-code", limit=100)
    difficulties = load_difficulties()
    first = build_tasks(arrivals, difficulties, slot_count=16)
    again = build_tasks(arrivals, difficulties, slot_count=16)
    other = build_tasks(arrivals, difficulties, slot_count=16, mapping=TaskMapping(seed=8))
    assert first == again
    assert first != other


def test_arrivals_are_rescaled_to_the_offered_load() -> None:
    arrivals = [Arrival(at_s=float(i), input_tokens=10, output_tokens=1) for i in range(101)]
    tasks = build_tasks(arrivals, ["<15 min fix"], slot_count=4, mapping=TaskMapping(offered_load=0.5))
    mean_run_s = sum(t.base_run_s for t in tasks) / len(tasks)
    rate = (len(tasks) - 1) / ((tasks[-1].arrival_ms - tasks[0].arrival_ms) / 1000)
    assert rate * mean_run_s / 4 == pytest.approx(0.5, rel=1e-3)


def test_difficulty_decides_requires_and_tokens_scale_with_turns() -> None:
    arrivals = [Arrival(at_s=0.0, input_tokens=100, output_tokens=7)]
    (task,) = build_tasks(arrivals, [">4 hours"], slot_count=1)
    assert task.requires == DIFFICULTY[">4 hours"].requires
    turns = max(1, round(task.base_run_s / 60))
    assert (task.input_tokens, task.output_tokens) == (100 * turns, 7 * turns)


def test_burstgpt_gpt4_rows_draw_hard_classes() -> None:
    arrivals = load_trace("burstgpt1")
    tasks = build_tasks(arrivals, load_difficulties(), slot_count=16)
    for a, t in zip(arrivals, tasks, strict=True):
        hard = t.difficulty in ("1-4 hours", ">4 hours")
        assert hard == (a.model_hint == "GPT-4")

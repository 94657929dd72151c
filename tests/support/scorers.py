"""EV scorers for tests, loaded by a worker process through ROUTER_EV_SCORER=support.scorers:NAME
(with the tests directory on PYTHONPATH)."""

from __future__ import annotations

from collections import Counter

from router.values import Task

POISON_PREFIX = "poison-"
EXPLOSIONS: Counter[str] = Counter()  # task id -> times `explosive` raised for it (in this process)


def explosive(task: Task) -> float:
    """Scores like the default (priority / 100) but raises for tasks whose id marks them as poison:
    an unexpected processing error, as a broken scorer or a bug would raise."""
    if task.task_id.startswith(POISON_PREFIX):
        EXPLOSIONS[task.task_id] += 1
        raise RuntimeError(f"scorer exploded on {task.task_id}")
    return task.priority / 100

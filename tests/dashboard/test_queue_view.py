"""The read side's queue view: one rebuild serves a process while fresh, a stale one is served
while a single background rebuild runs, and a failure says why rather than serving nothing."""

from __future__ import annotations

import threading
from typing import Any

import pytest
import redis

from dashboard.format import eta
from dashboard.queue import QueueUnavailable, QueueView
from router.values import QueuePlace


class Snapshots:
    """Stands in for a rebuilt Router: each rebuild is numbered, its one task placed at that number."""

    def __init__(self) -> None:
        self.builds = 0
        self.fail_with: Exception | None = None
        self.gate: threading.Event | None = None

    def load(self) -> Any:
        if self.gate is not None:
            self.gate.wait(10)
        if self.fail_with is not None:
            raise self.fail_with
        self.builds += 1
        return self

    def queue_places(self, now_ms: int) -> dict[str, QueuePlace]:
        return {"t": QueuePlace(position=self.builds, eta_s=None, waiting_since_ms=now_ms)}


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _view(source: Snapshots, clock: Clock) -> QueueView:
    return QueueView(source.load, clock=lambda: 1_765_000_000.0, monotonic=clock, min_age_s=1.0)


def test_a_fresh_rebuild_is_reused_without_reading_again() -> None:
    source, clock = Snapshots(), Clock()
    view = _view(source, clock)
    first = view.snapshot()
    clock.now += 0.9
    assert view.snapshot() is first and source.builds == 1


def test_a_stale_rebuild_is_served_while_one_rebuild_runs_behind() -> None:
    source, clock = Snapshots(), Clock()
    view = _view(source, clock)
    assert view.place("t") == QueuePlace(position=1, eta_s=None, waiting_since_ms=1_765_000_000_000)
    clock.now += 1.5
    source.gate = threading.Event()  # the background rebuild waits until released
    assert view.snapshot().places["t"].position == 1  # stale, served at once
    assert view.snapshot().places["t"].position == 1  # still; and no second rebuild started
    source.gate.set()
    view.wait_for_refresh()
    assert view.snapshot().places["t"].position == 2 and source.builds == 2


def test_concurrent_first_requests_share_one_rebuild() -> None:
    source, clock = Snapshots(), Clock()
    view = _view(source, clock)
    source.gate = threading.Event()
    results: list[int] = []
    threads = [threading.Thread(target=lambda: results.append(view.snapshot().places["t"].position)) for _ in range(4)]
    for thread in threads:
        thread.start()
    source.gate.set()
    for thread in threads:
        thread.join(10)
    assert results == [1, 1, 1, 1] and source.builds == 1


@pytest.mark.parametrize(
    ("error", "message"),
    [(redis.ConnectionError("refused"), "Redis does not answer"), (ValueError("bad JSON"), "cannot be read")],
)
def test_a_failed_rebuild_says_why_then_the_next_request_tries_again(error: Exception, message: str) -> None:
    source, clock = Snapshots(), Clock()
    view = _view(source, clock)
    view.snapshot()
    clock.now += 1.5
    source.fail_with = error
    view.snapshot()  # the stale one, while the background rebuild fails
    view.wait_for_refresh()
    with pytest.raises(QueueUnavailable, match=message):
        view.snapshot()
    source.fail_with = None
    assert view.snapshot().places["t"].position == 2


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (None, "unknown"),
        (0.2, "~1 s"),
        (42.4, "~42 s"),
        (240, "~4 min"),
        (7_200, "~2 h"),
        (3 * 86_400, "~3 d"),
        (float("inf"), "unknown"),
        (float("nan"), "unknown"),
    ],
)
def test_an_eta_reads_as_an_estimate(seconds: float | None, text: str) -> None:
    assert eta(seconds) == text

"""Budgets against a live worker on the real Redis: spent budgets bar their slots (soft: but for
override tasks), the spend survives restarts and kill -9 without double counts, the UTC day
rollover re-opens a budget, and a bad budgets file stops the start with one line."""

from __future__ import annotations

import signal
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis
from support.processes import REPO, wait_for

from router.catalog import load_catalog
from streams.clients import Dispatcher
from streams.codec import encode
from streams.keys import Keys
from worker.routing import RoutingWorker
from worker.settings import Settings
from worker.signals import StopFlag

pytestmark = pytest.mark.integration

OPUS_COST = 0.20  # the packaged catalogue's opus price for the "unknown" layer's token estimate


def budgets_file(tmp_path: Path, usd: float, mode: str) -> Path:
    path = tmp_path / "budgets.toml"
    path.write_text(
        f'[[budget]]\nname = "premium-daily"\nperiod = "day"\nusd = {usd}\nmodels = ["opus"]\nmode = "{mode}"\n'
    )
    return path


def docs(r: redis.Redis, stream: str) -> list[dict[str, Any]]:
    return [orjson.loads(fields[b"data"]) for _, fields in r.xrange(stream)]


def event(r: redis.Redis, keys: Keys, **doc: Any) -> None:
    r.xadd(keys.events, {"data": encode(doc)})


def decision_for(r: redis.Redis, keys: Keys, task_id: str, outcome: str) -> dict[str, Any]:
    def find() -> dict[str, Any] | None:
        found = [d for d in docs(r, keys.decisions) if d["task_id"] == task_id and d["outcome"] == outcome]
        return found[-1] if found else None

    return wait_for(find, what=f"{outcome} decision for {task_id}")


def spent(r: redis.Redis, keys: Keys) -> float:
    raw = r.hget(keys.state(dry_run=False).budgets, "premium-daily")
    return 0.0 if raw is None else float(orjson.loads(raw)[1])


def spend_the_budget(r: redis.Redis, keys: Keys) -> None:
    """t1 (priority 95: premium allowed) takes the only free slot, opus; its estimate spends the budget."""
    event(r, keys, type="slot.free", slot_id="o1", model="opus")
    Dispatcher(r, keys).publish_task("t1", priority=95)
    assert decision_for(r, keys, "t1", "assigned")["chosen_slot_id"] == "o1"
    wait_for(lambda: spent(r, keys) == pytest.approx(OPUS_COST), what="the estimate booked")
    event(r, keys, type="slot.free", slot_id="o1", model="opus", completed={"task_id": "t1"})


def test_soft_budget_sends_normal_work_to_tier_2_and_lets_an_override_take_opus(
    r: redis.Redis, keys: Keys, start_worker: Any, tmp_path: Path
) -> None:
    start_worker(env={"ROUTER_BUDGETS": str(budgets_file(tmp_path, 0.15, "soft"))})
    spend_the_budget(r, keys)
    Dispatcher(r, keys).publish_task("t2", priority=95)
    waiting = decision_for(r, keys, "t2", "await_slot")
    assert waiting["reason_code"] == "budget_exhausted"
    (opus,) = [a for a in waiting["alternatives"] if a["slot_id"] == "o1"]
    assert opus["verdict"] == "budget_exhausted" and opus["detail"] == "premium-daily: $0.20 / $0.15 (day)"
    event(r, keys, type="slot.free", slot_id="s1", model="sonnet")
    placed = decision_for(r, keys, "t2", "assigned")
    assert (placed["chosen_model"], placed["chosen_tier"]) == ("sonnet", 2)
    Dispatcher(r, keys).publish_task("t3", priority=95, quest_priority=97)
    override = decision_for(r, keys, "t3", "assigned")
    assert override["chosen_model"] == "opus" and override["reason_code"] == "override_highest_tier"


def test_hard_budget_blocks_override_tasks_too(r: redis.Redis, keys: Keys, start_worker: Any, tmp_path: Path) -> None:
    start_worker(env={"ROUTER_BUDGETS": str(budgets_file(tmp_path, 0.15, "hard"))})
    spend_the_budget(r, keys)
    Dispatcher(r, keys).publish_task("t3", priority=95, quest_priority=97)
    waiting = decision_for(r, keys, "t3", "await_slot")
    assert waiting["reason_code"] == "budget_exhausted"


def test_sighup_reloads_the_budgets_file_and_a_raised_limit_places_the_waiting_task(
    r: redis.Redis, keys: Keys, start_worker: Any, tmp_path: Path
) -> None:
    path = budgets_file(tmp_path, 0.15, "hard")
    worker = start_worker(env={"ROUTER_BUDGETS": str(path)})
    spend_the_budget(r, keys)
    Dispatcher(r, keys).publish_task("t2", priority=95)
    assert decision_for(r, keys, "t2", "await_slot")["reason_code"] == "budget_exhausted"
    path.write_text("not = [valid")
    worker.proc.send_signal(signal.SIGHUP)  # a broken file: the old budgets stay in force
    wait_for(lambda: "budgets not reloaded" in worker.log(), what="the refusal logged")
    budgets_file(tmp_path, 10.0, "hard")
    worker.proc.send_signal(signal.SIGHUP)
    placed = decision_for(r, keys, "t2", "assigned")
    assert placed["chosen_model"] == "opus"
    assert worker.proc.poll() is None


def test_spend_survives_kill_9_and_a_duplicated_usage_report_counts_once(
    r: redis.Redis, keys: Keys, start_worker: Any, tmp_path: Path
) -> None:
    env = {"ROUTER_BUDGETS": str(budgets_file(tmp_path, 5.0, "hard"))}
    first = start_worker(env=env)
    event(r, keys, type="slot.free", slot_id="o1", model="opus")
    Dispatcher(r, keys).publish_task("t1", priority=95)
    decision_for(r, keys, "t1", "assigned")
    wait_for(lambda: spent(r, keys) == pytest.approx(OPUS_COST), what="the estimate booked")
    first.kill()
    second = start_worker(env=env)
    # the usage report, twice (a producer's retried XADD), replaces the estimate once
    report = {"task_id": "t1", "cost_usd": 0.05}
    event(r, keys, type="slot.free", slot_id="o1", model="opus", completed=report)
    event(r, keys, type="slot.free", slot_id="o1", model="opus", completed=report)
    wait_for(lambda: spent(r, keys) == pytest.approx(0.05), what="the actual cost in place of the estimate")
    Dispatcher(r, keys).publish_task("t2", priority=95)
    decision_for(r, keys, "t2", "assigned")
    wait_for(lambda: spent(r, keys) == pytest.approx(0.05 + OPUS_COST), what="the second estimate")
    second.kill()
    start_worker(env=env)
    Dispatcher(r, keys).publish_task("t-probe", priority=10)
    decision_for(r, keys, "t-probe", "await_slot")  # the new leader has routed since the restart
    assert spent(r, keys) == pytest.approx(0.05 + OPUS_COST)


def test_the_day_rollover_reopens_a_budget(redis_url: str, prefix: str, r: redis.Redis, tmp_path: Path) -> None:
    """An in-process worker on the real Redis with an injected clock: no waiting for midnight."""
    keys = Keys(prefix)
    now = [datetime(2026, 12, 8, 23, 59, 0, tzinfo=UTC).timestamp()]
    settings = Settings(
        redis_url=redis_url,
        prefix=prefix,
        block_ms=50,
        consumer="clocked",
        budgets_path=str(budgets_file(tmp_path, 0.15, "hard")),
    )
    worker = RoutingWorker(settings, r, catalog=load_catalog(), stop=StopFlag(), clock=lambda: now[0])

    def step_until(done: Any) -> Any:
        for _ in range(200):
            worker.step()
            found = done()
            if found:
                return found
        raise AssertionError("the worker did not get there")

    event(r, keys, type="slot.free", slot_id="o1", model="opus")
    Dispatcher(r, keys).publish_task("t1", priority=95)
    step_until(lambda: spent(r, keys) > 0)
    event(r, keys, type="slot.free", slot_id="o1", model="opus", completed={"task_id": "t1"})
    Dispatcher(r, keys).publish_task("t2", priority=95)
    waited = step_until(lambda: [d for d in docs(r, keys.decisions) if d["task_id"] == "t2"])
    assert waited[0]["reason_code"] == "budget_exhausted"
    now[0] = datetime(2026, 12, 9, 0, 0, 1, tzinfo=UTC).timestamp()
    event(r, keys, type="slot.heartbeat", slot_id="o1")
    placed = step_until(lambda: [d for d in docs(r, keys.decisions) if d["task_id"] == "t2" and d["chosen_slot_id"]])
    assert placed[0]["chosen_model"] == "opus"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('[[budget]]\nname = "b"\nperiod = "day"\nusd = 5\nmodels = ["gpt-99"]\n', "unknown model 'gpt-99'"),
        ('[[budget]]\nname = "b"\nperiod = "week"\nusd = 5\n', "period 'week' is not one of"),
        ('[[budget]]\nname = "b"\nperiod = "day"\nusd = nan\n', "'usd' must be a finite number above 0"),
        ("[[budget]\n", "not valid TOML"),
    ],
)
def test_a_bad_budgets_file_stops_the_worker_with_one_line(
    redis_url: str, prefix: str, tmp_path: Path, content: str, message: str
) -> None:
    path = tmp_path / "budgets.toml"
    path.write_text(content)
    done = subprocess.run(
        [sys.executable, "-m", "worker.cli", "worker"],
        env={"REDIS_URL": redis_url, "ROUTER_PREFIX": prefix, "ROUTER_BUDGETS": str(path), "PATH": ""},
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and str(path) in lines[0], done.stderr

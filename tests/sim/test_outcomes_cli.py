"""`router simulate --failures / --misrated / --quality-gate / --budgets` end to end on small seeded runs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from worker.cli import main

TIGHT_HARD_OPUS = """
[[budget]]
name = "opus-daily"
period = "day"
usd = 3.0
models = ["opus"]
mode = "hard"
"""


def _run(tmp_path: Path, *args: str) -> dict[str, Any]:
    out = tmp_path / "sim.json"
    assert main(["simulate", "--fleet", "2-4-10", *args, "--json", str(out)]) == 0
    (scenario,) = json.loads(out.read_text())["scenarios"]
    return scenario


def _policy(scenario: dict[str, Any], name: str) -> dict[str, Any]:
    return next(p for p in scenario["policies"] if p["policy"] == name)


def test_failures_give_the_outcome_figures_and_goals_and_repeat_per_seed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ("--limit", "300", "--failures", "--policies", "fifo-capable,router,premium")
    first = _run(tmp_path, *args)
    assert "$/success" in capsys.readouterr().out
    again = _run(tmp_path, *args)
    assert first["policies"] == again["policies"]  # one seed, one result
    other_seed = _run(tmp_path, *args, "--seed", "8")
    assert other_seed["policies"] != first["policies"]
    router = _policy(first, "router")
    assert 0.9 < router["success_rate"] <= 1.0 and router["wasted_usd"] > 0
    assert router["usd_per_success"] == pytest.approx(router["total_usd"] / router["succeeded"], rel=1e-3)
    assert {g["goal"] for g in first["outcome_goals"]} == {
        "$/success / premium",
        "$/success / fifo-capable",
        "success rate, points below premium",
    }


def test_without_failures_every_attempt_succeeds_and_the_figures_stay_as_they_were(tmp_path: Path) -> None:
    scenario = _run(tmp_path, "--limit", "200", "--policies", "router")
    router = _policy(scenario, "router")
    assert router["success_rate"] == 1.0 and router["wasted_usd"] == 0.0 and router["escalations_per_task"] == 0.0
    assert "outcome_goals" not in scenario


def test_the_gate_on_cuts_the_misrated_models_share_of_failures(tmp_path: Path) -> None:
    common = ("--limit", "2000", "--failures", "--misrated", "haiku", "--policies", "router")
    off = _run(tmp_path, *common, "--quality-gate", "off")
    on = _run(tmp_path, *common, "--quality-gate", "on")
    off_after = off["failure_model"]["misrated_failure_shares"]["router"]["after"]
    on_after = on["failure_model"]["misrated_failure_shares"]["router"]["after"]
    assert off_after > 0.8  # ungated, the overrated model makes most failures
    assert on_after < 0.6 * off_after
    assert _policy(on, "router")["escalations_per_task"] < _policy(off, "router")["escalations_per_task"] / 2


def test_a_tight_hard_budget_is_passed_by_at_most_the_largest_single_assignment(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    budgets = tmp_path / "budgets.toml"
    budgets.write_text(TIGHT_HARD_OPUS)
    scenario = _run(tmp_path, "--limit", "400", "--policies", "fifo-capable,router", "--budgets", str(budgets))
    assert "the other policies ignore them" in capsys.readouterr().out
    assert [p["policy"] for p in scenario["policies"]] == ["fifo-capable", "router", "router[no budgets]"]
    (figures,) = scenario["budgets"]
    assert figures["name"] == "opus-daily" and figures["limit_usd"] == 3.0
    assert figures["worst_spend_usd"] > 3.0 * 0.5  # the budget binds, it is not idle
    assert figures["overshoot_usd"] <= figures["largest_assignment_usd"]
    assert figures["budget_waited"] > 0 and figures["moved_cheaper"] > 0
    unbudgeted = _policy(scenario, "router[no budgets]")
    assert _policy(scenario, "router")["total_usd"] < unbudgeted["total_usd"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--misrated", "haiku"], "--misrated needs --failures"),
        (["--failures", "--misrated", "gpt-9"], "--misrated gpt-9: not a model of fleet"),
        (["--budgets", "{missing}"], "--budgets"),
        (["--budgets", "{bad}"], "unknown model"),
        (["--reference", "--failures"], "--reference runs without --failures"),
        (["--set", "quality_gate=maybe"], "quality_gate=maybe: one of off, shadow, on"),
    ],
)
def test_bad_options_are_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[[budget]]\nname = "x"\nperiod = "day"\nusd = 1.0\nmodels = ["gpt-9"]\nmode = "hard"\n')
    args = [a.format(missing=tmp_path / "none.toml", bad=bad) for a in args]
    assert main(["simulate", "--limit", "10", "--fleet", "2-4-10", *args]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err

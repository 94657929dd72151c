"""`router simulate` end to end on a small slice: table, JSON and PNG."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from worker.cli import main


def test_simulate_writes_table_json_and_plot(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out_json, out_png = tmp_path / "sim.json", tmp_path / "sim.png"
    code = main(
        [
            "simulate",
            "--limit",
            "150",
            "--fleet",
            "4-4-4",
            "--sweep",
            "age_s_per_priority_point=0,300",
            "--json",
            str(out_json),
            "--plot",
            str(out_png),
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "fifo-capable" in printed and "router[age_s_per_priority_point=300]" in printed
    doc = json.loads(out_json.read_text())
    (scenario,) = doc["scenarios"]
    assert [p["policy"] for p in scenario["policies"]][:5] == ["fifo", "fifo-capable", "cheapest", "router", "premium"]
    assert out_png.read_bytes()[:4] == b"\x89PNG"


def test_unknown_router_setting_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["simulate", "--limit", "10", "--set", "no_such=1"]) == 2
    assert "no_such" in capsys.readouterr().err

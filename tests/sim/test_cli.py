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
            "ageing_points_per_service_time=0,300",
            "--json",
            str(out_json),
            "--plot",
            str(out_png),
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "fifo-capable" in printed and "router[ageing_points_per_service_time=300]" in printed
    doc = json.loads(out_json.read_text())
    (scenario,) = doc["scenarios"]
    assert [p["policy"] for p in scenario["policies"]][:5] == ["fifo", "fifo-capable", "cheapest", "router", "premium"]
    assert out_png.read_bytes()[:4] == b"\x89PNG"


def test_load_models_and_loads_repeat(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out_json = tmp_path / "sim.json"
    args = ["--load-model", "sessions", "--load-model", "calls", "--load", "0.5", "--load", "0.9"]
    assert simulate(*args, "--policies", "fifo-capable,router", "--json", str(out_json)) == 0
    doc = json.loads(out_json.read_text())
    assert [(s["load_model"], s["offered_load"]) for s in doc["scenarios"]] == [
        ("sessions", 0.5),
        ("sessions", 0.9),
        ("calls", 0.5),
        ("calls", 0.9),
    ]
    assert "load model calls, offered load 0.9" in capsys.readouterr().out


def test_unknown_load_model_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        simulate("--load-model", "batch")
    assert exited.value.code == 2
    assert "invalid choice: 'batch'" in capsys.readouterr().err


def test_unknown_router_setting_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["simulate", "--limit", "10", "--set", "no_such=1"]) == 2
    assert "no_such" in capsys.readouterr().err


def simulate(*args: str) -> int:
    """One small, fast scenario with these extra options."""
    return main(["simulate", "--limit", "10", "--fleet", "4-4-4", "--policies", "fifo", *args])


@pytest.mark.parametrize(
    ("option", "value", "problem"),
    [
        ("--load", "0", "must be a number from 0.001 to 1000"),
        ("--load", "-1", "must be a number from 0.001 to 1000"),
        ("--load", "nan", "must be a number from 0.001 to 1000"),
        ("--load", "inf", "must be a number from 0.001 to 1000"),
        ("--load", "busy", "'busy' is not a number"),
        ("--limit", "0", "must be at least 1"),
        ("--limit", "-1", "must be at least 1"),
    ],
)
def test_bad_numbers_are_refused_by_the_parser(
    option: str, value: str, problem: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        simulate(option, value)
    assert exited.value.code == 2
    assert f"argument {option}: {problem}" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("args", "problem"),
    [
        (["--policies", ""], "names no policy"),
        (["--policies", ","], "names no policy"),
        (["--policies", "fifo,fifo"], "policy fifo is asked for twice"),
        (["--sweep", "ev_window"], "expected KEY=V1,V2,..."),
        (["--sweep", "ev_window="], "expected KEY=V1,V2,..."),
        (["--sweep", "ev_window=,"], "expected KEY=V1,V2,..."),
        (["--sweep", "ev_window=10,,20"], "expected KEY=V1,V2,..."),
        (["--sweep", "ev_window=10,10"], "asked for twice"),
        (["--sweep", "ev_window=10,0"], "ev_window=0: must be positive"),
        (["--set", "ev_window=0"], "ev_window=0: must be positive"),
        (["--set", "ev_window=ten"], "ev_window=ten: not a valid int"),
        (["--set", "remember_assigned=-1"], "remember_assigned=-1: must be 0 or more"),
        (["--set", "assignment_timeout_s=nan"], "assignment_timeout_s=nan: must be a finite number"),
        (["--set", "assignment_timeout_s=0"], "assignment_timeout_s=0: must be positive"),
        (["--set", "stale_after_s=-5"], "stale_after_s=-5: must be positive"),
        (["--set", "stale_after_s=nan"], "stale_after_s=nan: must be a finite number"),
        (["--set", "ev_rank_points=-1"], "ev_rank_points=-1: must be 0 or more"),
        (["--set", "ev_rank_points=inf"], "ev_rank_points=inf: must be a finite number"),
        (
            ["--set", "ageing_points_per_service_time=nan"],
            "ageing_points_per_service_time=nan: must be a finite number",
        ),
        (["--set", "ageing_points_per_service_time=-45"], "ageing_points_per_service_time=-45: must be 0 or more"),
    ],
)
def test_bad_policies_sweeps_and_settings_get_one_line(
    args: list[str], problem: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert simulate(*args) == 2
    err = capsys.readouterr().err
    assert problem in err and err.count("\n") == 1


def test_zero_turns_ev_points_and_ageing_off(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["--set", "ev_rank_points=0", "--set", "ageing_points_per_service_time=0", "--set", "remember_assigned=0"]
    assert main(["simulate", "--limit", "10", "--fleet", "4-4-4", "--policies", "router", *args]) == 0
    assert "router" in capsys.readouterr().out


@pytest.mark.parametrize("option", ["--json", "--plot"])
def test_an_output_path_that_cannot_be_written_fails_before_the_run(
    option: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a_file = tmp_path / "file"
    a_file.write_text("x")
    for path, problem in [(tmp_path, "is a directory"), (a_file / "out.png", f"{a_file} is not a directory")]:
        assert simulate(option, str(path)) == 2
        printed = capsys.readouterr()
        assert f"{option} {path}: {problem}" in printed.err
        assert "fifo" not in printed.out  # refused before any scenario ran


def test_an_unknown_plot_format_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert simulate("--plot", str(tmp_path / "x.xyz")) == 2
    assert "unknown image format '.xyz'; use png, svg, pdf" in capsys.readouterr().err
    assert not (tmp_path / "x.xyz").exists()


def test_a_plot_without_extension_is_a_png_at_exactly_that_path(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "new" / "out"
    assert simulate("--plot", str(out)) == 0
    assert out.read_bytes()[:4] == b"\x89PNG"
    assert not out.with_suffix(".png").exists()
    assert f"wrote {out}\n" in capsys.readouterr().out


def test_an_svg_plot_follows_its_extension(tmp_path: Path) -> None:
    out = tmp_path / "out.SVG"
    assert simulate("--plot", str(out)) == 0
    assert b"<svg" in out.read_bytes()[:1000]


def test_a_bad_fleet_fails_before_any_scenario_runs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_bytes(b"\xff\xfe binary")
    assert main(["simulate", "--limit", "10", "--policies", "fifo", "--fleet", "4-4-4", "--fleet", str(bad)]) == 2
    printed = capsys.readouterr()
    assert "not UTF-8" in printed.err and "fifo" not in printed.out


def test_a_bad_trace_file_gets_one_line_naming_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "AzureLLMInferenceTrace_code.csv").write_text("TIMESTAMP,ContextTokens\n2023-11-16 18:17:03,5\n")
    assert simulate("--traces-dir", str(tmp_path)) == 2
    err = capsys.readouterr().err
    assert "AzureLLMInferenceTrace_code.csv: no 'GeneratedTokens' column" in err and err.count("\n") == 1

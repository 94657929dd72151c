"""Trace and difficulty files from --traces-dir: a bad file is refused naming the file and, where it helps, the line."""

from __future__ import annotations

from pathlib import Path

import pytest

from router.errors import ConfigError
from sim.traces import MAX_TOKENS, SWEBENCH_FILE, TRACES, load_difficulties, load_trace
from sim.workload import DIFFICULTY

AZURE_FILE = TRACES["azure-code"].file_name
AZURE_HEADER = "TIMESTAMP,ContextTokens,GeneratedTokens\n"
AZURE_ROW = "2023-11-16 18:17:03.9799600,4808,10\n"
BURSTGPT_HEADER = "Timestamp,Model,Request tokens,Response tokens\n"


def write_trace(tmp_path: Path, text: str, file_name: str = AZURE_FILE) -> Path:
    (tmp_path / file_name).write_text(text, encoding="utf-8")
    return tmp_path


@pytest.mark.parametrize(
    ("rows", "problem"),
    [
        ("2023-11-16 18:17:03.9799600,12,x\n", "line 3: GeneratedTokens 'x' is not an integer"),
        ("not a date,12,3\n", "line 3: TIMESTAMP 'not a date' is not a date and time"),
        ("2023-11-16 18:17:03.9799600,12\n", "line 3: no GeneratedTokens value"),
        ("2023-11-16 18:17:03.9799600,-12,3\n", "line 3: ContextTokens '-12' is not from 0"),
        ("2023-11-16 18:17:03.9799600,12,-3\n", "line 3: GeneratedTokens '-3' is not from 0"),
        (f"2023-11-16 18:17:03.9799600,{MAX_TOKENS + 1},3\n", "line 3: ContextTokens"),
    ],
)
def test_a_bad_row_is_refused_naming_file_and_line(tmp_path: Path, rows: str, problem: str) -> None:
    traces_dir = write_trace(tmp_path, AZURE_HEADER + AZURE_ROW + rows)
    with pytest.raises(ConfigError, match=f"{AZURE_FILE} {problem}"):
        load_trace("azure-code", traces_dir=traces_dir)


@pytest.mark.parametrize(
    ("trace", "text", "problem"),
    [
        ("mooncake", "timestamp_ms,input_length,output_length\n1e400,1,2\n", "timestamp_ms '1e400' is not a finite"),
        ("burstgpt1", "Timestamp,Model,Request tokens,Response tokens\nnan,GPT-4,1,2\n", "Timestamp 'nan' is not"),
        (
            "burstgpt1",
            "Timestamp,Model,Request tokens,Response tokens\n-1.7e308,GPT-4,1,2\n1.7e308,GPT-4,1,2\n",
            "span",
        ),
    ],
)
def test_timestamps_must_be_finite_and_replayable(tmp_path: Path, trace: str, text: str, problem: str) -> None:
    traces_dir = write_trace(tmp_path, text, TRACES[trace].file_name)
    with pytest.raises(ConfigError, match=problem):
        load_trace(trace, traces_dir=traces_dir)


def test_wrong_columns_are_refused_naming_the_missing_one(tmp_path: Path) -> None:
    traces_dir = write_trace(tmp_path, "time,in,out\n1,2,3\n")
    with pytest.raises(ConfigError, match=f"{AZURE_FILE}: no 'TIMESTAMP' column"):
        load_trace("azure-code", traces_dir=traces_dir)


@pytest.mark.parametrize(("text", "problem"), [("", "is empty"), (AZURE_HEADER, "has no usable rows")])
def test_an_empty_trace_is_refused(tmp_path: Path, text: str, problem: str) -> None:
    with pytest.raises(ConfigError, match=problem):
        load_trace("azure-code", traces_dir=write_trace(tmp_path, text))


def test_a_binary_trace_is_refused(tmp_path: Path) -> None:
    (tmp_path / AZURE_FILE).write_bytes(AZURE_HEADER.encode() + b"\xff\xfe\x81\x00garbage\n")
    with pytest.raises(ConfigError, match=f"{AZURE_FILE} is not UTF-8 text"):
        load_trace("azure-code", traces_dir=tmp_path)


def test_an_unparseable_csv_is_refused(tmp_path: Path) -> None:
    traces_dir = write_trace(tmp_path, AZURE_HEADER + '"' + "x" * 200_000 + '",1,2\n')
    with pytest.raises(ConfigError, match="after line 1: not a readable CSV file"):
        load_trace("azure-code", traces_dir=traces_dir)


def test_a_row_limit_below_one_is_refused() -> None:
    with pytest.raises(ConfigError, match="at least 1"):
        load_trace("azure-code", limit=0)


def test_rows_with_no_output_are_skipped_not_refused(tmp_path: Path) -> None:
    traces_dir = write_trace(tmp_path, AZURE_HEADER + "2023-11-16 18:17:03.9799600,5,0\n" + AZURE_ROW)
    (arrival,) = load_trace("azure-code", traces_dir=traces_dir)
    assert (arrival.input_tokens, arrival.output_tokens) == (4808, 10)


def test_the_shipped_difficulties_are_all_known() -> None:
    assert len(load_difficulties(known=DIFFICULTY)) == 1699


def test_a_missing_difficulty_file_is_refused_naming_it(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=f"cannot read difficulty file .*{SWEBENCH_FILE}"):
        load_difficulties(tmp_path)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "is empty"),
        ("difficulty\n", "has no rows"),
        ("id,label\n1,easy\n", "no 'difficulty' column"),
        ("difficulty\n1-4 hours\neasy\n", "line 3: unknown difficulty 'easy'"),
        ("id,difficulty\n1-4 hours\n", "line 2: no difficulty value"),
    ],
)
def test_a_bad_difficulty_file_is_refused(tmp_path: Path, text: str, problem: str) -> None:
    (tmp_path / SWEBENCH_FILE).write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match=problem):
        load_difficulties(tmp_path, known=DIFFICULTY)


def test_a_binary_difficulty_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / SWEBENCH_FILE).write_bytes(b"difficulty\n\xff\xfe\x81\n")
    with pytest.raises(ConfigError, match="not UTF-8 text"):
        load_difficulties(tmp_path, known=DIFFICULTY)

"""Trace readers: each public trace becomes a list of arrivals (seconds from its first row, tokens).

Only arrival times and token counts are taken from a trace; everything else a task needs comes
from the seeded mapping in sim.workload.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from router.errors import ConfigError

TRACES_DIR = Path(__file__).parent / "traces"
SWEBENCH_FILE = "swebench_verified_annotations_difficulty.csv"
MAX_TOKENS = 1_000_000_000  # per trace row; far above any real model call, and keeps cost sums finite


@dataclass(frozen=True, slots=True, kw_only=True)
class Arrival:
    at_s: float  # seconds after the trace's first row
    input_tokens: int
    output_tokens: int
    model_hint: str | None = None  # BurstGPT's model column ("ChatGPT" / "GPT-4"); None elsewhere


# The readers raise ValueError with a message fit for the user; load_trace adds the file and line.


def _value(row: dict[str, str | None], column: str) -> str:
    value = row.get(column)
    if value is None:  # csv.DictReader fills the columns a short row lacks with None
        raise ValueError(f"no {column} value (the row is short)")
    return value


def _tokens(row: dict[str, str | None], column: str) -> int:
    raw = _value(row, column)
    try:
        tokens = int(raw)
    except ValueError:
        raise ValueError(f"{column} {raw!r} is not an integer") from None
    if not 0 <= tokens <= MAX_TOKENS:
        raise ValueError(f"{column} {raw!r} is not from 0 to {MAX_TOKENS:,}")
    return tokens


def _seconds(row: dict[str, str | None], column: str, *, per_second: int = 1) -> float:
    raw = _value(row, column)
    try:
        value = float(raw) / per_second
    except ValueError:
        raise ValueError(f"{column} {raw!r} is not a number") from None
    if not math.isfinite(value):
        raise ValueError(f"{column} {raw!r} is not a finite number")
    return value


def _wall_clock(row: dict[str, str | None], column: str) -> float:
    raw = _value(row, column)
    try:
        # 100-ns wall-clock timestamps; Python parses up to microseconds, so drop the last digit
        return datetime.fromisoformat(raw[:26]).timestamp()
    except (ValueError, OverflowError, OSError):
        raise ValueError(f"{column} {raw!r} is not a date and time") from None


def _azure(row: dict[str, str | None]) -> tuple[float, int, int, str | None]:
    return _wall_clock(row, "TIMESTAMP"), _tokens(row, "ContextTokens"), _tokens(row, "GeneratedTokens"), None


def _mooncake(row: dict[str, str | None]) -> tuple[float, int, int, str | None]:
    at = _seconds(row, "timestamp_ms", per_second=1000)
    return at, _tokens(row, "input_length"), _tokens(row, "output_length"), None


def _burstgpt(row: dict[str, str | None]) -> tuple[float, int, int, str | None]:
    at = _seconds(row, "Timestamp")
    return at, _tokens(row, "Request tokens"), _tokens(row, "Response tokens"), _value(row, "Model")


Reader = Callable[[dict[str, str | None]], tuple[float, int, int, str | None]]


@dataclass(frozen=True, slots=True)
class TraceFormat:
    file_name: str
    columns: tuple[str, ...]  # the columns its reader needs; checked against the header first
    reader: Reader


_AZURE_COLUMNS = ("TIMESTAMP", "ContextTokens", "GeneratedTokens")
_BURSTGPT_COLUMNS = ("Timestamp", "Model", "Request tokens", "Response tokens")

TRACES: dict[str, TraceFormat] = {
    "azure-code": TraceFormat("AzureLLMInferenceTrace_code.csv", _AZURE_COLUMNS, _azure),
    "azure-conv": TraceFormat("AzureLLMInferenceTrace_conv.csv", _AZURE_COLUMNS, _azure),
    "mooncake": TraceFormat(
        "mooncake_conversation_trace.csv", ("timestamp_ms", "input_length", "output_length"), _mooncake
    ),
    "burstgpt1": TraceFormat("burstgpt1_first400.csv", _BURSTGPT_COLUMNS, _burstgpt),
    "burstgpt3": TraceFormat("burstgpt3_first400.csv", _BURSTGPT_COLUMNS, _burstgpt),
}


def _csv_rows(path: Path, columns: Sequence[str], what: str) -> Iterator[tuple[int, dict[str, str | None]]]:
    """(line number, row) of a CSV file that has these columns; problems reading it as ConfigErrors naming it."""
    line = 0  # the last line read, for the csv module's own errors
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            if reader.fieldnames is None:
                raise ConfigError(f"{what} {path} is empty")
            line = reader.line_num
            missing = [c for c in columns if c not in reader.fieldnames]
            if missing:
                raise ConfigError(f"{what} {path}: no {missing[0]!r} column (needs {', '.join(columns)})")
            for row in reader:
                line = reader.line_num
                yield line, row
    except OSError as exc:
        raise ConfigError(f"cannot read {what} {path}: {exc.strerror or exc}") from exc
    except UnicodeDecodeError:
        raise ConfigError(f"{what} {path} is not UTF-8 text") from None
    except csv.Error as exc:
        raise ConfigError(f"{what} {path} after line {line}: not a readable CSV file ({exc})") from None


def load_trace(name: str, *, limit: int | None = None, traces_dir: Path | None = None) -> list[Arrival]:
    """The first `limit` usable rows of a named trace, in arrival order, times relative to the first row.

    Failed BurstGPT requests (0 response tokens) are skipped: they did no work to replay. A row with a
    missing, malformed or negative value fails the whole trace, naming its line: a replay of part of a
    file would be quietly different from the one asked for.
    """
    if name not in TRACES:
        raise ConfigError(f"unknown trace {name!r}; known: {', '.join(TRACES)}")
    if limit is not None and limit < 1:
        raise ConfigError(f"the row limit must be at least 1, got {limit}")
    trace = TRACES[name]
    path = (traces_dir or TRACES_DIR) / trace.file_name
    rows: list[tuple[float, int, int, str | None]] = []
    for line, row in _csv_rows(path, trace.columns, "trace"):
        try:
            at, tokens_in, tokens_out, hint = trace.reader(row)
        except ValueError as exc:
            raise ConfigError(f"trace {path} line {line}: {exc}") from None
        if tokens_out == 0:
            continue
        rows.append((at, tokens_in, tokens_out, hint))
        if limit is not None and len(rows) >= limit:
            break
    rows.sort(key=lambda r: r[0])  # stable: rows sharing a timestamp keep file order
    if not rows:
        raise ConfigError(f"trace {path} has no usable rows")
    t0 = rows[0][0]
    if not math.isfinite(rows[-1][0] - t0):
        raise ConfigError(f"trace {path}: its timestamps span more time than can be replayed")
    return [Arrival(at_s=at - t0, input_tokens=i, output_tokens=o, model_hint=h) for at, i, o, h in rows]


def load_difficulties(traces_dir: Path | None = None, *, known: Collection[str] | None = None) -> list[str]:
    """SWE-bench Verified difficulty labels, one per annotated task (all 1,699, in file order).

    With `known`, every label must be one of them (the task mapping has nothing for any other).
    """
    path = (traces_dir or TRACES_DIR) / SWEBENCH_FILE
    labels = []
    for line, row in _csv_rows(path, ("difficulty",), "difficulty file"):
        label = row["difficulty"]
        if label is None:
            raise ConfigError(f"difficulty file {path} line {line}: no difficulty value (the row is short)")
        if known is not None and label not in known:
            raise ConfigError(
                f"difficulty file {path} line {line}: unknown difficulty {label!r}; known: {', '.join(known)}"
            )
        labels.append(label)
    if not labels:
        raise ConfigError(f"difficulty file {path} has no rows")
    return labels

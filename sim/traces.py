"""Trace readers: each public trace becomes a list of arrivals (seconds from its first row, tokens).

Only arrival times and token counts are taken from a trace; everything else a task needs comes
from the seeded mapping in sim.workload.
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from router.errors import ConfigError

TRACES_DIR = Path(__file__).parent / "traces"
SWEBENCH_FILE = "swebench_verified_annotations_difficulty.csv"


@dataclass(frozen=True, slots=True, kw_only=True)
class Arrival:
    at_s: float  # seconds after the trace's first row
    input_tokens: int
    output_tokens: int
    model_hint: str | None = None  # BurstGPT's model column ("ChatGPT" / "GPT-4"); None elsewhere


def _azure(row: dict[str, str]) -> tuple[float, int, int, str | None]:
    # 100-ns wall-clock timestamps; Python parses up to microseconds, so drop the last digit
    stamp = row["TIMESTAMP"][:26]
    return datetime.fromisoformat(stamp).timestamp(), int(row["ContextTokens"]), int(row["GeneratedTokens"]), None


def _mooncake(row: dict[str, str]) -> tuple[float, int, int, str | None]:
    return int(row["timestamp_ms"]) / 1000, int(row["input_length"]), int(row["output_length"]), None


def _burstgpt(row: dict[str, str]) -> tuple[float, int, int, str | None]:
    return float(row["Timestamp"]), int(row["Request tokens"]), int(row["Response tokens"]), row["Model"]


Reader = Callable[[dict[str, str]], tuple[float, int, int, str | None]]

TRACES: dict[str, tuple[str, Reader]] = {
    "azure-code": ("AzureLLMInferenceTrace_code.csv", _azure),
    "azure-conv": ("AzureLLMInferenceTrace_conv.csv", _azure),
    "mooncake": ("mooncake_conversation_trace.csv", _mooncake),
    "burstgpt1": ("burstgpt1_first400.csv", _burstgpt),
    "burstgpt3": ("burstgpt3_first400.csv", _burstgpt),
}


def load_trace(name: str, *, limit: int | None = None, traces_dir: Path | None = None) -> list[Arrival]:
    """The first `limit` usable rows of a named trace, in arrival order, times relative to the first row.

    Failed BurstGPT requests (0 response tokens) are skipped: they did no work to replay.
    """
    if name not in TRACES:
        raise ConfigError(f"unknown trace {name!r}; known: {', '.join(TRACES)}")
    file_name, reader = TRACES[name]
    path = (traces_dir or TRACES_DIR) / file_name
    rows: list[tuple[float, int, int, str | None]] = []
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            for row in csv.DictReader(fh):
                at, tokens_in, tokens_out, hint = reader(row)
                if tokens_out <= 0:
                    continue
                rows.append((at, tokens_in, tokens_out, hint))
                if limit is not None and len(rows) >= limit:
                    break
    except OSError as exc:
        raise ConfigError(f"cannot read trace {path}: {exc.strerror or exc}") from exc
    rows.sort(key=lambda r: r[0])  # stable: rows sharing a timestamp keep file order
    if not rows:
        raise ConfigError(f"trace {name} has no usable rows")
    t0 = rows[0][0]
    return [Arrival(at_s=at - t0, input_tokens=i, output_tokens=o, model_hint=h) for at, i, o, h in rows]


def load_difficulties(traces_dir: Path | None = None) -> list[str]:
    """SWE-bench Verified difficulty labels, one per annotated task (all 1,699, in file order)."""
    path = (traces_dir or TRACES_DIR) / SWEBENCH_FILE
    with path.open(newline="", encoding="utf-8") as fh:
        return [row["difficulty"] for row in csv.DictReader(fh)]

"""`router explain`: every decision about one task, from SQL and from the decisions stream (for
ones the recorder has not written yet), rendered for a person or as JSON for scripts."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

OUTCOME_STYLE = {"assigned": "green", "await_slot": "yellow", "unroutable": "red", "failed": "red"}
VERDICT_STYLE = {
    "chosen": "bold green",
    "incapable": "red",
    "premium_blocked": "magenta",
    "busy": "yellow",
    "stale": "dim",
    "gone": "dim",
}


def merge(stored: Iterable[Mapping[str, Any]], streamed: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Stored records, plus stream records not stored yet (marked `recorded: false`), oldest first.
    The stored copy wins: it is the one that carries reported usage."""
    out: dict[str, dict[str, Any]] = {}
    for record in stored:
        out[str(record["decision_id"])] = {**record, "recorded": True}
    for record in streamed:
        out.setdefault(str(record.get("decision_id")), {**record, "recorded": False})
    return sorted(out.values(), key=lambda d: (d.get("decided_at") or 0, str(d.get("decision_id"))))


def render(task_id: str, records: list[dict[str, Any]]) -> RenderableType:
    if not records:
        return Text(f"No decision about task {task_id!r} (neither in the store nor in the decisions stream).")
    parts: list[RenderableType] = [Text(f"Task {task_id}: {len(records)} decision(s)", style="bold")]
    chain = attempt_chain(records)
    if chain:
        parts.append(Text(f"Attempts: {chain}"))
    for record in records:
        parts.append(Text(""))
        parts.extend(_render_one(record))
    return Group(*parts)


def _render_one(d: Mapping[str, Any]) -> list[RenderableType]:
    outcome = str(d.get("outcome", "?"))
    head = Text()
    head.append(f"{_when(d.get('decided_at'))}  ", style="dim")
    head.append(outcome.upper(), style=f"bold {OUTCOME_STYLE.get(outcome, '')}")
    if d.get("chosen_model"):
        head.append(f"  -> {d['chosen_model']} (tier {d.get('chosen_tier')}) on slot {d.get('chosen_slot_id')}")
        head.append(f", account {d.get('account')}", style="dim")
    if (d.get("attempt") or 1) > 1:
        head.append(f"  attempt {d.get('attempt')}, after {d.get('previous_decision_id')}", style="bold")
    if d.get("dry_run"):
        head.append("  [dry run]", style="dim")
    if not d.get("recorded", True):
        head.append("  [in stream, not yet recorded]", style="yellow")
    lines: list[RenderableType] = [head]
    policy = d.get("policy_version") or "-"
    ids = f"  decision {d.get('decision_id')}  (input event {d.get('event_id')}, policy {policy})"
    lines.append(Text(ids, style="dim"))
    if d.get("title"):
        lines.append(Text(f"  title: {d['title']}"))
    rule = Text("  rule: ")
    rule.append(str(d.get("reason_code")), style="bold")
    rule.append(f"  -  {d.get('reason')}")
    lines.append(rule)
    lines.append(Text("  " + _numbers(d)))
    if d.get("task_outcome"):
        reported = str(d["task_outcome"]) + (f" ({d['task_failure']})" if d.get("task_failure") else "")
        detail = f': "{d["task_detail"]}"' if d.get("task_detail") else ""
        lines.append(Text(f"  slot reported: {reported}{detail}", style=OUTCOME_STYLE.get(str(d["task_outcome"]), "")))
    cost = _cost(d)
    if cost:
        lines.append(Text("  " + cost))
    alternatives = d.get("alternatives") or []
    if alternatives:
        lines.append(_alternatives_table(alternatives))
    return lines


def attempt_chain(records: list[dict[str, Any]]) -> str:
    """`1 haiku (failed: capability) -> 2 sonnet (succeeded)`: each assignment in order, with the
    outcome its slot reported; empty for a task assigned at most once and never failed."""
    steps = []
    for d in records:
        if d.get("outcome") == "assigned":
            reported = d.get("task_outcome") or "no outcome yet"
            if d.get("task_failure"):
                reported = f"{reported}: {d['task_failure']}"
            steps.append(f"{d.get('attempt') or 1} {d.get('chosen_model')} ({reported})")
        elif d.get("outcome") == "failed":
            steps.append("gave up")
    if len(steps) < 2 and not any(d.get("outcome") == "failed" for d in records):
        return ""
    return " -> ".join(steps)


def _numbers(d: Mapping[str, Any]) -> str:
    parts = [
        f"EV {_num(d.get('ev'))}",
        f"P50 {_num(d.get('ev_p50'))}",
        f"P90 {_num(d.get('ev_p90'))}",
        f"priority {d.get('priority')}",
        f"quest priority {d.get('quest_priority') if d.get('quest_priority') is not None else '-'}",
        f"layer {d.get('layer')}",
    ]
    if d.get("override"):
        parts.append("override (may claim a higher tier)")
    if d.get("min_tier") is not None:
        parts.append(f"lowest capable tier {d.get('min_tier')}")
    return ", ".join(parts)


def _cost(d: Mapping[str, Any]) -> str:
    out = []
    if d.get("est_cost_usd") is not None:
        out.append(f"estimated ${d['est_cost_usd']:.4f}")
    if d.get("actual_cost_usd") is not None:
        tokens = f" ({d.get('actual_input_tokens')} in / {d.get('actual_output_tokens')} out tokens)"
        out.append(f"actual ${d['actual_cost_usd']:.4f}{tokens}, completed {_when(d.get('completed_at'))}")
    return "; ".join(out)


def _alternatives_table(alternatives: list[Mapping[str, Any]]) -> Table:
    table = Table(box=None, padding=(0, 2), show_edge=False, pad_edge=True)
    for column in ("slot", "model", "tier", "account", "verdict", "detail"):
        table.add_column(column, style="dim" if column == "account" else "")
    for alt in alternatives:
        verdict = str(alt.get("verdict"))
        slot = alt.get("slot_id") or ""
        if alt.get("count", 1) != 1:
            slot = f"{alt.get('count')} slots: {', '.join(alt.get('slot_ids') or [])}"
        table.add_row(
            f"  {slot}",
            str(alt.get("model")),
            str(alt.get("tier")),
            str(alt.get("account")),
            Text(verdict, style=VERDICT_STYLE.get(verdict, "")),
            str(alt.get("detail") or ""),
        )
    return table


def _num(value: Any) -> str:
    return f"{value:.3f}" if isinstance(value, int | float) else "-"


def _when(ms: Any) -> str:
    if not isinstance(ms, int | float):
        return "-"
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + "Z"

"""The SQL schema: one row per decision, one row per reported usage, and an hourly rollup of both.

Usage lives in its own table rather than in columns of the decision row: a slot's `completed`
report travels on a different stream from the decision and may reach the recorder first, so an
insert that needs no decision row is what makes "usage before its decision" impossible to lose.
Queries join the two on `decision_id`.

The rollup holds, per (hour, model, layer), the sums the dashboard's matrix needs, so that a long
window reads one row per hour and cell instead of every decision (see store/rollup.py).
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    Index,
    MetaData,
    PrimaryKeyConstraint,
    SmallInteger,
    String,
    Table,
    Text,
)

from store.db import UtcDateTime

DECISIONS_TABLE = "model_routing_decisions"
USAGE_TABLE = "model_routing_usage"
HOURLY_TABLE = "model_routing_hourly"

# Lengths from the wire contract (ids up to 128 characters); decision ids are the input entry id
# plus a sequence number, with room for a prefix.
ID_LEN = 128
DECISION_ID_LEN = 200
ENTRY_ID_LEN = 64

metadata = MetaData()

decisions = Table(
    DECISIONS_TABLE,
    metadata,
    Column("decision_id", String(DECISION_ID_LEN), primary_key=True),
    Column("task_id", String(ID_LEN), nullable=False),
    Column("chosen_slot_id", String(ID_LEN)),
    Column("chosen_model", String(ID_LEN)),
    Column("alternatives_json", Text, nullable=False),
    Column("reason", Text, nullable=False),
    Column("decided_at", UtcDateTime, nullable=False),
    Column("outcome", String(16), nullable=False),
    Column("reason_code", String(48), nullable=False),
    Column("chosen_tier", SmallInteger),
    Column("account", String(ID_LEN)),
    Column("layer", String(ID_LEN), nullable=False),
    Column("priority", SmallInteger, nullable=False),
    Column("quest_priority", SmallInteger),
    Column("title", Text),
    Column("ev", Float, nullable=False),
    Column("ev_p50", Float),
    Column("ev_p90", Float),
    Column("override", Boolean, nullable=False, default=False),
    Column("min_tier", SmallInteger),
    Column("est_cost_usd", Float),
    Column("dry_run", Boolean, nullable=False, default=False),
    Column("event_id", String(ENTRY_ID_LEN)),
    Column("policy_version", String(64), nullable=False, default=""),
    Column("stream_id", String(ENTRY_ID_LEN)),  # the decisions-stream entry it was recorded from
    Column("recorded_at", UtcDateTime, nullable=False),
    # v1.1 (migration 0004): the attempt (NULL: 1) and the failed assignment that started it
    Column("attempt", SmallInteger),
    Column("previous_decision_id", String(DECISION_ID_LEN)),
    Column("requirement_level", SmallInteger),  # the highest capability level the task requires
    # `explain` and "decisions for a task": task first, newest last.
    Index("ix_mrd_task_decided", "task_id", "decided_at"),
    # time windows (list, retention, dashboard range).
    Index("ix_mrd_decided_at", "decided_at"),
    # the dashboard's model x layer matrix and `router decisions --model M --layer L --since`.
    Index("ix_mrd_model_layer_decided", "chosen_model", "layer", "decided_at"),
)

usage = Table(
    USAGE_TABLE,
    metadata,
    # The slot.free entry that reported it: a redelivered usage entry is the same row.
    Column("event_id", String(ENTRY_ID_LEN), primary_key=True),
    # Unique: a slot that reports the same task twice is counted once (the first report wins).
    # NULL when the router could not tie the report to a decision; such rows are kept, not joined.
    Column("decision_id", String(DECISION_ID_LEN), unique=True),
    Column("task_id", String(ID_LEN), nullable=False),
    Column("slot_id", String(ID_LEN), nullable=False),
    Column("model", String(ID_LEN), nullable=False),
    Column("account", String(ID_LEN), nullable=False),
    Column("input_tokens", BigInteger),
    Column("output_tokens", BigInteger),
    Column("cost_usd", Float),
    # "reported" (the slot sent cost_usd) or "catalogue" (priced from the tokens by the recorder).
    Column("cost_source", String(16)),
    Column("reported_at", UtcDateTime, nullable=False),
    Column("recorded_at", UtcDateTime, nullable=False),
    Column("stream_id", String(ENTRY_ID_LEN)),
    # v1.1 (migration 0004): the outcome reported (NULL: unreported), its failure kind and detail,
    # what the router did with it (escalated, retried, failed, none, ignored) and the attempt
    Column("outcome", String(16)),
    Column("failure", String(16)),
    Column("detail", Text),
    Column("outcome_effect", String(16)),
    Column("attempt", SmallInteger),
    Index("ix_mru_task", "task_id"),
    Index("ix_mru_reported_at", "reported_at"),
)

# Counts and sums over the assigned, non-dry-run decisions of one model on one layer decided in
# one UTC hour, with their usage; the same figures dashboard.queries.CellSums carries. Only those
# decisions are rolled up: the panel counts nothing else, and every row here is one it reads.
HOURLY_COUNTS = (
    "decisions",
    "actual_decisions",
    "estimated_decisions",
    "with_estimate",
    "premium",
    "premium_below_p50",
)
HOURLY_SUMS = ("actual_usd", "estimated_usd", "estimate_usd_all")

hourly = Table(
    HOURLY_TABLE,
    metadata,
    Column("hour", UtcDateTime, nullable=False),  # the start of the UTC hour `decided_at` falls in
    Column("chosen_model", String(ID_LEN), nullable=False),
    Column("layer", String(ID_LEN), nullable=False),
    Column("decisions", BigInteger, nullable=False),
    Column("actual_decisions", BigInteger, nullable=False),  # with reported usage that has a cost
    Column("actual_usd", Float, nullable=False),
    Column("estimated_decisions", BigInteger, nullable=False),  # no reported cost, but an estimate
    Column("estimated_usd", Float, nullable=False),
    Column("with_estimate", BigInteger, nullable=False),  # an estimate at all, reported cost or not
    Column("estimate_usd_all", Float, nullable=False),
    Column("premium", BigInteger, nullable=False),  # chosen_tier >= the premium tier
    Column("premium_below_p50", BigInteger, nullable=False),  # ... with ev < ev_p50
    # hour first: the dashboard reads a range of hours; retention deletes the oldest.
    PrimaryKeyConstraint("hour", "chosen_model", "layer", name="pk_model_routing_hourly"),
)

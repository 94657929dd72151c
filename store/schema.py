"""The SQL schema: one row per decision, one row per reported usage.

Usage lives in its own table rather than in columns of the decision row: a slot's `completed`
report travels on a different stream from the decision and may reach the recorder first, so an
insert that needs no decision row is what makes "usage before its decision" impossible to lose.
Queries join the two on `decision_id`.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, Column, Float, Index, MetaData, SmallInteger, String, Table, Text

from store.db import UtcDateTime

DECISIONS_TABLE = "model_routing_decisions"
USAGE_TABLE = "model_routing_usage"

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
    Index("ix_mru_task", "task_id"),
    Index("ix_mru_reported_at", "reported_at"),
)

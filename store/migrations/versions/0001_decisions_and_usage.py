"""Decision and usage tables.

Revision ID: 0001
Revises:
Create Date: 2025-01-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "model_routing_decisions",
        sa.Column("decision_id", sa.String(200), primary_key=True),
        sa.Column("task_id", sa.String(128), nullable=False),
        sa.Column("chosen_slot_id", sa.String(128)),
        sa.Column("chosen_model", sa.String(128)),
        sa.Column("alternatives_json", sa.Text, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("decided_at", _TS, nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("reason_code", sa.String(48), nullable=False),
        sa.Column("chosen_tier", sa.SmallInteger),
        sa.Column("account", sa.String(128)),
        sa.Column("layer", sa.String(128), nullable=False),
        sa.Column("priority", sa.SmallInteger, nullable=False),
        sa.Column("quest_priority", sa.SmallInteger),
        sa.Column("title", sa.Text),
        sa.Column("ev", sa.Float, nullable=False),
        sa.Column("ev_p50", sa.Float),
        sa.Column("ev_p90", sa.Float),
        sa.Column("override", sa.Boolean, nullable=False),
        sa.Column("min_tier", sa.SmallInteger),
        sa.Column("est_cost_usd", sa.Float),
        sa.Column("dry_run", sa.Boolean, nullable=False),
        sa.Column("event_id", sa.String(64)),
        sa.Column("policy_version", sa.String(64), nullable=False),
        sa.Column("stream_id", sa.String(64)),
        sa.Column("recorded_at", _TS, nullable=False),
    )
    op.create_index("ix_mrd_task_decided", "model_routing_decisions", ["task_id", "decided_at"])
    op.create_index("ix_mrd_decided_at", "model_routing_decisions", ["decided_at"])
    op.create_index("ix_mrd_model_layer_decided", "model_routing_decisions", ["chosen_model", "layer", "decided_at"])

    op.create_table(
        "model_routing_usage",
        sa.Column("event_id", sa.String(64), primary_key=True),
        sa.Column("decision_id", sa.String(200), unique=True),
        sa.Column("task_id", sa.String(128), nullable=False),
        sa.Column("slot_id", sa.String(128), nullable=False),
        sa.Column("model", sa.String(128), nullable=False),
        sa.Column("account", sa.String(128), nullable=False),
        sa.Column("input_tokens", sa.BigInteger),
        sa.Column("output_tokens", sa.BigInteger),
        sa.Column("cost_usd", sa.Float),
        sa.Column("cost_source", sa.String(16)),
        sa.Column("reported_at", _TS, nullable=False),
        sa.Column("recorded_at", _TS, nullable=False),
        sa.Column("stream_id", sa.String(64)),
    )
    op.create_index("ix_mru_task", "model_routing_usage", ["task_id"])
    op.create_index("ix_mru_reported_at", "model_routing_usage", ["reported_at"])


def downgrade() -> None:
    op.drop_table("model_routing_usage")
    op.drop_table("model_routing_decisions")

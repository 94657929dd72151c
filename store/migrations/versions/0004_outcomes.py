"""Task outcomes: the outcome a slot reported with its usage, what the router did with it, and the
attempt chain on each decision (PROTOCOL.md v1.1, Task outcomes).

Revision ID: 0004
Revises: 0002
Create Date: 2026-12-08
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # nullable, no default: rows written before outcomes existed stay "unreported" and attempt 1
    with op.batch_alter_table("model_routing_usage") as batch:
        batch.add_column(sa.Column("outcome", sa.String(16)))
        batch.add_column(sa.Column("failure", sa.String(16)))
        batch.add_column(sa.Column("detail", sa.Text))
        batch.add_column(sa.Column("outcome_effect", sa.String(16)))
        batch.add_column(sa.Column("attempt", sa.SmallInteger))
    with op.batch_alter_table("model_routing_decisions") as batch:
        batch.add_column(sa.Column("attempt", sa.SmallInteger))
        batch.add_column(sa.Column("previous_decision_id", sa.String(200)))
        batch.add_column(sa.Column("requirement_level", sa.SmallInteger))


def downgrade() -> None:
    with op.batch_alter_table("model_routing_decisions") as batch:
        batch.drop_column("requirement_level")
        batch.drop_column("previous_decision_id")
        batch.drop_column("attempt")
    with op.batch_alter_table("model_routing_usage") as batch:
        for name in ("attempt", "outcome_effect", "detail", "failure", "outcome"):
            batch.drop_column(name)

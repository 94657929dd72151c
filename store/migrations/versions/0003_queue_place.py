"""Queue position and ETA of an await_slot decision, as of that moment (PROTOCOL.md v1.1).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-08
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Nullable: decisions other than await_slot, and those recorded before this revision, have none.
    # A plain ADD COLUMN on both dialects: no copy of the table, however many rows it holds.
    op.add_column("model_routing_decisions", sa.Column("position", sa.Integer))
    op.add_column("model_routing_decisions", sa.Column("eta_s", sa.Float))


def downgrade() -> None:
    with op.batch_alter_table("model_routing_decisions") as batch:
        batch.drop_column("eta_s")
        batch.drop_column("position")

"""Hourly rollup of the dashboard's matrix sums, filled from the decisions already stored.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_TS = sa.DateTime(timezone=True)

# The backfill is written out here rather than imported from store.rollup, so this revision keeps
# doing what it did when it shipped whatever later code does. Premium is tier 3 and up.
_BACKFILL = """
INSERT INTO model_routing_hourly (hour, chosen_model, layer, decisions, actual_decisions, actual_usd,
    estimated_decisions, estimated_usd, with_estimate, estimate_usd_all, premium, premium_below_p50)
SELECT {hour}, d.chosen_model, d.layer,
    count(*),
    count(u.cost_usd),
    coalesce(sum(u.cost_usd), 0.0),
    count(CASE WHEN u.cost_usd IS NULL THEN d.est_cost_usd END),
    coalesce(sum(CASE WHEN u.cost_usd IS NULL THEN d.est_cost_usd END), 0.0),
    count(d.est_cost_usd),
    coalesce(sum(d.est_cost_usd), 0.0),
    count(CASE WHEN d.chosen_tier >= 3 THEN 1 END),
    count(CASE WHEN d.chosen_tier >= 3 AND d.ev < d.ev_p50 THEN 1 END)
FROM model_routing_decisions d
LEFT JOIN model_routing_usage u ON u.decision_id = d.decision_id
WHERE d.outcome = 'assigned' AND d.chosen_model IS NOT NULL AND NOT d.dry_run
GROUP BY 1, 2, 3
"""
# The start of the UTC hour, as each dialect stores timestamps: PostgreSQL truncates in the
# session's time zone unless told UTC; SQLite holds SQLAlchemy's text form of naive UTC.
_HOUR = {
    "postgresql": "date_trunc('hour', d.decided_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'",
    "sqlite": "strftime('%Y-%m-%d %H:00:00.000000', d.decided_at)",
}


def upgrade() -> None:
    op.create_table(
        "model_routing_hourly",
        sa.Column("hour", _TS, nullable=False),
        sa.Column("chosen_model", sa.String(128), nullable=False),
        sa.Column("layer", sa.String(128), nullable=False),
        sa.Column("decisions", sa.BigInteger, nullable=False),
        sa.Column("actual_decisions", sa.BigInteger, nullable=False),
        sa.Column("actual_usd", sa.Float, nullable=False),
        sa.Column("estimated_decisions", sa.BigInteger, nullable=False),
        sa.Column("estimated_usd", sa.Float, nullable=False),
        sa.Column("with_estimate", sa.BigInteger, nullable=False),
        sa.Column("estimate_usd_all", sa.Float, nullable=False),
        sa.Column("premium", sa.BigInteger, nullable=False),
        sa.Column("premium_below_p50", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("hour", "chosen_model", "layer", name="pk_model_routing_hourly"),
    )
    bind = op.get_bind()
    # In the migration's transaction: a recorder that starts writing after the upgrade finds
    # every decision stored before it already rolled up, and none twice.
    op.execute(sa.text(_BACKFILL.format(hour=_HOUR[bind.dialect.name])))


def downgrade() -> None:
    op.drop_table("model_routing_hourly")

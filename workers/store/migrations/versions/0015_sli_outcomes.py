"""service levels (issue 29): one row per (room, agent) whose fate is known, written once in the room's
own transaction (`workers.store.sli_outcomes`), read over the SLO window by `decided_at`

Rooms decided before the upgrade have no row: their outcomes were never counted, and are not now (the
window fills from the upgrade on).

Revision ID: 0015
Revises: 0014
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sli_outcomes",
        sa.Column("room_sid", sa.String(64), primary_key=True),
        sa.Column("agent", sa.String(128), primary_key=True),
        sa.Column("room_name", sa.String(256), nullable=False),
        sa.Column("decided_at", sa.Float(), nullable=False),
        sa.Column("on_time", sa.Boolean(), nullable=False),
        sa.Column("served", sa.Boolean(), nullable=False),
        sa.Column("how", sa.String(32), nullable=False),
    )
    op.create_index("ix_sli_outcomes_decided_at", "sli_outcomes", ["decided_at", "agent"])


def downgrade() -> None:
    op.drop_index("ix_sli_outcomes_decided_at", table_name="sli_outcomes")
    op.drop_table("sli_outcomes")

"""recovery: the room's pending deadline and recovery step, for the sweep and the API

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("rooms") as batch:
        batch.add_column(sa.Column("deadline_at", sa.Float(), nullable=True))
        batch.add_column(sa.Column("recovery", sa.String(32), nullable=False, server_default="none"))
    op.create_index("ix_rooms_deadline_at", "rooms", ["deadline_at"])


def downgrade() -> None:
    op.drop_index("ix_rooms_deadline_at", "rooms")
    with op.batch_alter_table("rooms") as batch:
        batch.drop_column("recovery")
        batch.drop_column("deadline_at")

"""room checkpoints: a room's state before the first webhook of each window of seconds, two a room, so
that a late webhook is folded in from near its place (`workers.store.checkpoints`)

Rooms stored before have none: their next late webhook is folded from their first event, as before,
and their first webhook of a new window writes one.

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "room_checkpoints",
        sa.Column("room_sid", sa.String(64), primary_key=True),
        sa.Column("slot", sa.Integer(), primary_key=True),
        sa.Column("second", sa.Integer(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("newest", sa.Integer(), nullable=False),
        sa.Column("state", sa.JSON(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("room_checkpoints")

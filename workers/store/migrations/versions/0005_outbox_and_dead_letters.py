"""the outbox of decided side effects, dead letters of failed jobs, and leases on incident steps

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "outbox",
        sa.Column("id", sa.String(160), primary_key=True),
        sa.Column("room_sid", sa.String(64), nullable=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("due_at", sa.Float(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("lease_until", sa.Float(), nullable=True),
        sa.Column("last_error", sa.String(512), nullable=True),
    )
    op.create_index("ix_outbox_due_at", "outbox", ["due_at"])
    op.create_table(
        "dead_letters",
        sa.Column("id", sa.String(160), primary_key=True),
        sa.Column("function", sa.String(64), nullable=False),
        sa.Column("args", sa.JSON(), nullable=False),
        sa.Column("room_sid", sa.String(64), nullable=True),
        sa.Column("room_name", sa.String(256), nullable=True),
        sa.Column("error", sa.String(2048), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("failed_at", sa.Float(), nullable=False),
        sa.Column("retried_at", sa.Float(), nullable=True),
    )
    op.create_index("ix_dead_letters_failed_at", "dead_letters", ["failed_at"])
    with op.batch_alter_table("incidents") as batch:
        batch.add_column(sa.Column("restart_done_at", sa.Float(), nullable=True))
        batch.add_column(sa.Column("rollback_done_at", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("incidents") as batch:
        batch.drop_column("rollback_done_at")
        batch.drop_column("restart_done_at")
    op.drop_table("dead_letters")
    op.drop_table("outbox")

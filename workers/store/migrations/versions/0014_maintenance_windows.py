"""Maintenance windows (issue 28): an operator's window over an agent or every agent, kept as history;
incidents marked while a window covers their agent

Revision ID: 0014
Revises: 0013
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "maintenance_windows",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("agent", sa.String(128), nullable=False),
        sa.Column("starts_at", sa.Float(), nullable=False),
        sa.Column("until", sa.Float(), nullable=False),
        sa.Column("reason", sa.String(500), nullable=False, server_default=""),
        sa.Column("by", sa.String(128), nullable=False),
        sa.Column("ended_at", sa.Float(), nullable=True),
    )
    op.create_index("ix_maintenance_windows_until", "maintenance_windows", ["until"])
    with op.batch_alter_table("incidents") as batch:
        batch.add_column(sa.Column("maintenance", sa.Boolean(), nullable=False, server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table("incidents") as batch:
        batch.drop_column("maintenance")
    op.drop_table("maintenance_windows")

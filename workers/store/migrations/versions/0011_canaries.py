"""canaries (issue 25): a row per canary run, and incidents a failing canary keeps open

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "canary_runs",
        sa.Column("n", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("agent_name", sa.String(128), nullable=False),
        sa.Column("room", sa.String(256), nullable=False),
        sa.Column("started_at", sa.Float(), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False, server_default="running"),
        sa.Column("seconds", sa.Float(), nullable=True),
        sa.Column("finished_at", sa.Float(), nullable=True),
        sa.Column("detail", sa.String(512), nullable=False, server_default=""),
    )
    op.create_index("ix_canary_runs_agent_n", "canary_runs", ["agent_name", "n"])
    op.create_index("ix_canary_runs_started_at", "canary_runs", ["started_at"])
    with op.batch_alter_table("incidents") as batch:
        batch.add_column(sa.Column("canary_failing", sa.Boolean(), nullable=False, server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table("incidents") as batch:
        batch.drop_column("canary_failing")
    op.drop_table("canary_runs")

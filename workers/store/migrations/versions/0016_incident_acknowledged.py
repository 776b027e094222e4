"""Operators in control (issue 28): an incident acknowledged by an operator, when and by whom (the name
of their token, never the token)

Revision ID: 0016
Revises: 0015
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("incidents") as batch:
        batch.add_column(sa.Column("acknowledged_at", sa.Float(), nullable=True))
        batch.add_column(sa.Column("acknowledged_by", sa.String(64), nullable=False, server_default=""))


def downgrade() -> None:
    with op.batch_alter_table("incidents") as batch:
        batch.drop_column("acknowledged_by")
        batch.drop_column("acknowledged_at")

"""LiveKit's job signals (issue 26): an incident's kind (an outage, or workers that are full) and the
workers it names (each took three jobs in the window whose agent never came)

Revision ID: 0012
Revises: 0011
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("incidents") as batch:
        batch.add_column(sa.Column("kind", sa.String(16), nullable=False, server_default="outage"))
        batch.add_column(sa.Column("workers", sa.String(1024), nullable=False, server_default=""))


def downgrade() -> None:
    with op.batch_alter_table("incidents") as batch:
        batch.drop_column("workers")
        batch.drop_column("kind")

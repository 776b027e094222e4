"""observe mode (issue 28): each line of an incident's log says whether it was carried out (a restart,
a rollback or an alert decided in observe mode is recorded, not made)

Revision ID: 0017
Revises: 0016
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("incident_actions") as batch:
        batch.add_column(sa.Column("carried_out", sa.Boolean(), nullable=False, server_default=sa.true()))


def downgrade() -> None:
    with op.batch_alter_table("incident_actions") as batch:
        batch.drop_column("carried_out")

"""retention and indexed reads: when reconciliation last confirmed a room, and the indexes that keep
pruning, reconciliation and the operator pages off full scans

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_OPEN = sa.text("phase <> 'closed'")


def upgrade() -> None:
    with op.batch_alter_table("rooms") as batch:
        batch.add_column(sa.Column("confirmed_at", sa.Float(), nullable=True))
    op.create_index("ix_rooms_phase_updated_at", "rooms", ["phase", "updated_at"])
    op.create_index("ix_rooms_open", "rooms", ["updated_at"], postgresql_where=_OPEN, sqlite_where=_OPEN)
    op.create_index("ix_incidents_resolved_at", "incidents", ["resolved_at"])
    op.create_index("ix_incident_rooms_room_sid", "incident_rooms", ["room_sid"])


def downgrade() -> None:
    op.drop_index("ix_incident_rooms_room_sid", "incident_rooms")
    op.drop_index("ix_incidents_resolved_at", "incidents")
    op.drop_index("ix_rooms_open", "rooms")
    op.drop_index("ix_rooms_phase_updated_at", "rooms")
    with op.batch_alter_table("rooms") as batch:
        batch.drop_column("confirmed_at")

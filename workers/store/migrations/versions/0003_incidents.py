"""incidents, the rooms they cover and what was done about them

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "incidents",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("agent_name", sa.String(128), nullable=False),
        sa.Column("open_key", sa.String(128), nullable=True, unique=True),
        sa.Column("reason", sa.String(512), nullable=False),
        sa.Column("opened_at", sa.Float(), nullable=False),
        sa.Column("resolved_at", sa.Float(), nullable=True),
        sa.Column("alerted_open_at", sa.Float(), nullable=True),
        sa.Column("restart_claimed_at", sa.Float(), nullable=True),
        sa.Column("restarted_at", sa.Float(), nullable=True),
        sa.Column("followup_claimed_at", sa.Float(), nullable=True),
        sa.Column("rollback_claimed_at", sa.Float(), nullable=True),
    )
    op.create_index("ix_incidents_agent_name", "incidents", ["agent_name"])
    op.create_index("ix_incidents_opened_at", "incidents", ["opened_at"])
    op.create_table(
        "incident_rooms",
        sa.Column("incident_id", sa.String(32), primary_key=True),
        sa.Column("room_sid", sa.String(64), primary_key=True),
        sa.Column("room_name", sa.String(256), nullable=False),
        sa.Column("added_at", sa.Float(), nullable=False),
        sa.Column("recovered_at", sa.Float(), nullable=True),
    )
    op.create_table(
        "incident_actions",
        sa.Column("seq", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("incident_id", sa.String(32), nullable=False),
        sa.Column("at", sa.Float(), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("outcome", sa.String(1024), nullable=False),
    )
    op.create_index("ix_incident_actions_incident_id", "incident_actions", ["incident_id"])


def downgrade() -> None:
    op.drop_table("incident_actions")
    op.drop_table("incident_rooms")
    op.drop_table("incidents")

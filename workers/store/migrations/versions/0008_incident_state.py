"""the incident machine's state on each incident, and a restart per deployment

Each incident's step claims (`alerted_open_at`, `restart_claimed_at`, `followup_claimed_at`, and the
outcome markers `restart_done_at`, `rollback_done_at`) become one `state` of the incident machine
(`workers.core.incident`), derived from them for the rows already there. The claim columns stay, unread
by this version, so that a worker of the previous one keeps working during the rollout (migrations only
add); a downgrade writes them again from the state. A restart now belongs to a deployment:
`deployment_restarts` holds each deployment's last restart (its claim, the legs still without an outcome,
when it landed), and each incident names its deployment. Incidents from before keep an empty deployment:
their restart's outcome, if one still comes, is theirs alone.

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

# The claims, newest step first: the state each row had reached.
_STATE = sa.text(
    """CASE
        WHEN resolved_at IS NOT NULL THEN 'resolved'
        WHEN rollback_claimed_at IS NOT NULL AND rollback_done_at IS NULL THEN 'rolling_back'
        WHEN followup_claimed_at IS NOT NULL OR rollback_claimed_at IS NOT NULL THEN 'followed_up'
        WHEN restarted_at IS NOT NULL THEN 'restarted'
        WHEN restart_done_at IS NOT NULL THEN 'not_restarted'
        WHEN restart_claimed_at IS NOT NULL THEN 'restarting'
        ELSE 'open'
    END"""
)


def upgrade() -> None:
    with op.batch_alter_table("incidents") as batch:
        batch.add_column(sa.Column("state", sa.String(32), nullable=False, server_default="open"))
        batch.add_column(sa.Column("deployment", sa.String(128), nullable=False, server_default=""))
    op.execute(sa.text(f"UPDATE incidents SET state = {_STATE.text}"))
    op.create_index("ix_incidents_deployment", "incidents", ["deployment"])
    op.create_table(
        "deployment_restarts",
        sa.Column("deployment", sa.String(128), primary_key=True),
        sa.Column("claimed_at", sa.Float(), nullable=True),
        sa.Column("pending", sa.String(32), nullable=False, server_default=""),
        sa.Column("landed_at", sa.Float(), nullable=True),
    )


def downgrade() -> None:
    op.drop_table("deployment_restarts")
    op.drop_index("ix_incidents_deployment", "incidents")
    # Each step the state says was taken, dated as well as the row can say (the claims were not kept
    # while this version ran).
    op.execute(
        sa.text(
            """UPDATE incidents SET
                alerted_open_at = opened_at,
                restart_claimed_at = CASE WHEN state <> 'open' THEN opened_at END,
                restart_done_at = CASE WHEN state NOT IN ('open', 'restarting')
                    THEN COALESCE(restarted_at, opened_at) END,
                followup_claimed_at = CASE WHEN state IN ('rolling_back', 'followed_up')
                    THEN COALESCE(rollback_claimed_at, opened_at) END,
                rollback_done_at = CASE WHEN state = 'followed_up' THEN rollback_claimed_at END"""
        )
    )
    with op.batch_alter_table("incidents") as batch:
        batch.drop_column("deployment")
        batch.drop_column("state")

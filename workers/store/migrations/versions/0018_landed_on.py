"""each line of an incident's log that says an alert landed names its route (`landed_on`: "slack",
"pagerduty", "opsgenie", "webhook"), so that the hand-over from observe mode reads which routes to say
"resolved" on from data, not from the lines' wording; the lines written before are filled in from it

Revision ID: 0018
Revises: 0017
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None

# How the lines written before named each route's calls ("alert opened", "PagerDuty opened" ...) and
# began an attempt that did not land.
LABELS = {
    "slack": "alert ",
    "pagerduty": "PagerDuty ",
    "opsgenie": "Opsgenie ",
    "webhook": "incident webhook ",
}
UNSENT = ("not sent", "refused for good", "gave up", "failed (")


def upgrade() -> None:
    with op.batch_alter_table("incident_actions") as batch:
        batch.add_column(sa.Column("landed_on", sa.String(length=32), nullable=True))
    actions = sa.table(
        "incident_actions",
        sa.column("action", sa.String),
        sa.column("outcome", sa.String),
        sa.column("carried_out", sa.Boolean),
        sa.column("landed_on", sa.String),
    )
    landed = sa.and_(
        actions.c.carried_out.is_(sa.true()), *(sa.not_(actions.c.outcome.startswith(u)) for u in UNSENT)
    )
    for route, label in LABELS.items():
        op.execute(actions.update().where(actions.c.action.startswith(label), landed).values(landed_on=route))


def downgrade() -> None:
    with op.batch_alter_table("incident_actions") as batch:
        batch.drop_column("landed_on")

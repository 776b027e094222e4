"""a row per expected agent: `room_agents` (room sid, agent, phase, recovery, deadline), filled from the
state of every room Warden has not seen finish

Closed rooms are not carried over: nobody waits in them, so no query of their agents is asked; the
writer gives one its rows if an event ever changes it again, and retention deletes them with it.
Rows come from the writer's own mapping (`room_agents.rows_of_state`), so an open room's rows are
those its next save writes. A room stored before views existed was watched for `WARDEN_AGENT_NAME`
(handed in by `workers.migrate.upgrade`).

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context, op

from workers.store.models import OPEN_PHASE, PHASE, RECOVERY
from workers.store.room_agents import rows_of_state

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

BATCH = 500  # rooms read, and their rows written, at a time


def _columns() -> list[sa.Column[object]]:
    return [
        sa.Column("room_sid", sa.String(64), primary_key=True),
        sa.Column("agent", sa.String(128), primary_key=True),
        sa.Column("phase", PHASE, nullable=False),
        sa.Column("recovery", RECOVERY, nullable=False),
        sa.Column("deadline_at", sa.Float(), nullable=True),
        sa.Column("waiting_since", sa.Float(), nullable=True),
        sa.Column("redispatches", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
    ]


def upgrade() -> None:
    op.create_table("room_agents", *_columns())
    op.create_index("ix_room_agents_agent_phase", "room_agents", ["agent", "phase"])
    _carry_over(context.config.attributes.get("legacy_agent", ""))


def _carry_over(legacy_agent: str) -> None:
    """Every open room's rows, `BATCH` rooms at a time in sid order."""
    rooms = sa.table("rooms", sa.column("sid", sa.String()), sa.column("state", sa.JSON()))
    target = sa.table("room_agents", *(sa.column(c.name, c.type) for c in _columns()))
    names = [c.name for c in target.c]
    bind, after = op.get_bind(), ""
    while True:
        found = bind.execute(
            sa.select(rooms.c.sid, rooms.c.state)
            .where(OPEN_PHASE, rooms.c.sid > after)
            .order_by(rooms.c.sid)
            .limit(BATCH)
        ).all()
        if not found:
            return
        made = [row for _, state in found for row in rows_of_state(state, legacy_agent=legacy_agent)]
        if made:  # the columns of this revision only: later ones are not there yet
            bind.execute(sa.insert(target), [{name: row[name] for name in names} for row in made])
        after = found[-1].sid


def downgrade() -> None:
    op.drop_index("ix_room_agents_agent_phase", "room_agents")
    op.drop_table("room_agents")

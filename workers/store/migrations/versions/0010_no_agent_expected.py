"""rooms with people that expect no agent: phase `no_agent_expected` (issue 23), not `idle`

Rows written before the phase existed said `idle` for such a room until its next event; the worker's
`discover` looks only at `no_agent_expected` rooms (for a dispatch made later), and the API's `?state=`
and `warden_rooms{phase}` read the column. Each open `idle` row's phase is read again from its state, as
the room machine now names it. A downgrade writes `idle` back.

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

import json

import sqlalchemy as sa
from alembic import context, op

from workers.core import stored

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

BATCH = 500


def upgrade() -> None:
    legacy_agent = context.config.attributes.get("legacy_agent", "")  # WARDEN_AGENT_NAME (see 0007)
    bind = op.get_bind()
    rows = bind.execute(sa.text("SELECT sid, state FROM rooms WHERE phase = 'idle'")).fetchall()
    changed = []
    for sid, state in rows:
        data = json.loads(state) if isinstance(state, str) else state
        room = stored.from_dict(data, legacy_agent=legacy_agent)
        phase = str(room.summary().phase)
        if phase != "idle":
            changed.append({"sid": sid, "phase": phase})
    update = sa.text("UPDATE rooms SET phase = :phase WHERE sid = :sid")
    for start in range(0, len(changed), BATCH):
        bind.execute(update, changed[start : start + BATCH])


def downgrade() -> None:
    op.execute("UPDATE rooms SET phase = 'idle' WHERE phase = 'no_agent_expected'")

"""The room writer's rows and statements (`workers.store.writer`): a room row's columns, and the
statements of a group's transaction, built once (constructing a statement per call costs more than
executing it).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import bindparam, case, insert, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from workers.core import stored
from workers.core.room import Room, time_to_agent
from workers.store.models import EVENTS, ROOMS


def room_values(room: Room, newest: int, received_at: float) -> dict[str, Any]:
    """The room row's columns for `room`, whose newest webhook applied is of second `newest` (all but the
    `version` and `first_seen_at` that only the writer knows): the phase and recovery of its agent most
    in need, its next deadline, and the time to its first expected agent."""
    shown = room.summary()
    waits = [t for t in (time_to_agent(room, v) for v in room.views) if t is not None]
    return {
        "sid": room.sid,
        "name": room.name,
        "phase": room.state(),
        "state": stored.to_dict(room),
        "last_created_at": newest,
        "last_rank": 0,  # was the newest event's rank within its second, before issue 24
        "updated_at": received_at,
        "deadline_at": room.next_deadline(),
        "recovery": str(shown.recovery),
        "time_to_agent": min(waits, default=None),
    }


def _insert_events(insert_for: Any) -> Any:
    statement = insert_for(EVENTS).on_conflict_do_nothing(index_elements=["event_id"])
    return statement.returning(EVENTS.c.event_id, EVENTS.c.seq)


INSERT_EVENTS = {"postgresql": _insert_events(postgresql_insert), "sqlite": _insert_events(sqlite_insert)}
SELECT_ROOMS = (
    select(ROOMS)
    .where(ROOMS.c.sid.in_(bindparam("sids", expanding=True)))
    .order_by(ROOMS.c.sid)
    .with_for_update()
)
INSERT_ROOMS = insert(ROOMS)
UPDATED = tuple(c.name for c in ROOMS.c if c.name not in ("sid", "version", "first_seen_at", "confirmed_at"))
# The version check: a row not at the version read gets a NULL version, which the NOT NULL column
# refuses, failing the transaction. (`WHERE version = ...` would skip the row silently instead, and
# asyncpg reports no row count for an executemany.)
UPDATE_ROOMS = (
    update(ROOMS)
    .where(ROOMS.c.sid == bindparam("b_sid"))
    .values(
        {
            **{name: bindparam(name) for name in UPDATED},
            "version": case((ROOMS.c.version == bindparam("b_version"), ROOMS.c.version + 1)),
        }
    )
)
INSERT_ACTIONS = insert(EVENTS)

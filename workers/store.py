"""Record one event and fold it into its room, exactly once, in one transaction.

- The event row is unique on the event id: a duplicate (LiveKit's retry, ARQ re-running a job) is
  seen before anything is written and changes nothing.
- The room row is read `FOR UPDATE` (PostgreSQL; SQLite's writers are serialised by BEGIN IMMEDIATE),
  so writers of one room queue instead of colliding, and it carries a `version`: the write is
  `UPDATE ... WHERE version = <read>`, so two writers that read the same room can never both write;
  the loser re-reads and tries again (`StaleWrite`). Event and room are committed together, so
  neither exists without the other.
- An event older than the newest one applied (by `rooms.order_key`) arrived out of order: the room
  is re-folded from its whole log, so the state is always the fold of the events in LiveKit's order.
"""

from __future__ import annotations

from dataclasses import replace
from enum import StrEnum

from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlmodel import col, select

from workers.errors import StaleWrite
from workers.events import Event, from_dict, to_dict
from workers.models import EventRow, RoomRow
from workers.rooms import Policy, Room, fold, order_key, room_from_dict, room_to_dict, transition

MAX_ATTEMPTS = 20


class Outcome(StrEnum):
    APPLIED = "applied"
    REFOLDED = "refolded"
    DUPLICATE = "duplicate"
    NO_ROOM = "no_room"


async def record_event(engine: AsyncEngine, event: Event, *, received_at: float, policy: Policy) -> Outcome:
    """Store `event` and update its room; retry on a concurrent writer. Safe to call twice."""
    for _ in range(MAX_ATTEMPTS):
        try:
            async with AsyncSession(engine, expire_on_commit=False) as session, session.begin():
                return await _record_once(session, event, received_at, policy)
        except (StaleWrite, IntegrityError):
            continue
    raise StaleWrite(f"room {event.room_sid} kept changing under {MAX_ATTEMPTS} attempts")


async def _record_once(session: AsyncSession, event: Event, received_at: float, policy: Policy) -> Outcome:
    seen = await session.scalar(select(EventRow.seq).where(col(EventRow.event_id) == event.id))
    if seen is not None:
        return Outcome.DUPLICATE
    if not event.room_sid:
        session.add(_event_row(event, received_at))
        return Outcome.NO_ROOM

    # FOR UPDATE queues concurrent writers of one room on PostgreSQL (SQLite's BEGIN IMMEDIATE already
    # does); the version check below still catches any writer that slipped past.
    row = await session.get(RoomRow, event.room_sid, with_for_update=True)
    if row is None:
        room = transition(Room(event.room_sid, event.room_name), event, now=received_at, policy=policy).room
        session.add(_event_row(event, received_at))
        session.add(_new_row(room, event, received_at))
        return Outcome.APPLIED

    key = order_key(event)
    if key >= (row.last_created_at, row.last_rank):
        room = transition(room_from_dict(row.state), event, now=received_at, policy=policy).room
        outcome = Outcome.APPLIED
    else:
        history = await _room_events(session, event.room_sid)
        room = fold(Room(row.sid, row.name), [*history, (event, received_at)], policy=policy)
        key = (row.last_created_at, row.last_rank)
        outcome = Outcome.REFOLDED
    if not room.name and event.room_name:
        room = replace(room, name=event.room_name)
    session.add(_event_row(event, received_at))
    result = await session.execute(
        update(RoomRow)
        .where(col(RoomRow.sid) == row.sid, col(RoomRow.version) == row.version)
        .values(
            name=room.name,
            phase=room.phase,
            state=room_to_dict(room),
            version=row.version + 1,
            last_created_at=key[0],
            last_rank=key[1],
            updated_at=received_at,
        )
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        raise StaleWrite(f"room {row.sid} changed since it was read")
    return outcome


def _event_row(event: Event, received_at: float) -> EventRow:
    return EventRow(
        event_id=event.id,
        room_sid=event.room_sid or None,
        kind=event.kind,
        name=event.name,
        participant_identity=event.participant.identity if event.participant else None,
        created_at=event.created_at,
        received_at=received_at,
        data=to_dict(event),
    )


def _new_row(room: Room, event: Event, received_at: float) -> RoomRow:
    created_at, rank = order_key(event)
    return RoomRow(
        sid=room.sid,
        name=room.name,
        phase=room.phase,
        state=room_to_dict(room),
        version=1,
        last_created_at=created_at,
        last_rank=rank,
        first_seen_at=received_at,
        updated_at=received_at,
    )


async def _room_events(session: AsyncSession, room_sid: str) -> list[tuple[Event, float]]:
    rows = await session.execute(
        select(col(EventRow.data), col(EventRow.received_at))
        .where(col(EventRow.room_sid) == room_sid)
        .order_by(col(EventRow.seq))
    )
    return [(from_dict(dict(data)), received_at) for data, received_at in rows]

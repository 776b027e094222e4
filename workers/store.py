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

import asyncio
import contextlib
from dataclasses import dataclass, replace
from enum import StrEnum

from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlmodel import col, select

from workers.db import for_writing
from workers.errors import StaleWrite
from workers.events import Event, from_dict, to_dict
from workers.models import EventRow, RoomRow
from workers.room_state import Action, Policy, Room, action_to_dict, room_from_dict, room_to_dict
from workers.rooms import fold, new_actions, order_key, transition

MAX_ATTEMPTS = 20


ACTION_KIND = "action"


class Outcome(StrEnum):
    APPLIED = "applied"
    REFOLDED = "refolded"
    DUPLICATE = "duplicate"
    NO_ROOM = "no_room"


@dataclass(frozen=True)
class Recorded:
    """What recording did: the outcome, the room as it now stands, and the actions newly decided."""

    outcome: Outcome
    room: Room | None = None
    actions: tuple[Action, ...] = ()


async def record_event(engine: AsyncEngine, event: Event, *, received_at: float, policy: Policy) -> Recorded:
    """Store `event` and update its room; retry on a concurrent writer. Safe to call twice."""
    for _ in range(MAX_ATTEMPTS):
        try:
            async with (
                _sqlite_writer(engine),
                AsyncSession(for_writing(engine), expire_on_commit=False) as session,
                session.begin(),
            ):
                return await _record_once(session, event, received_at, policy)
        except (StaleWrite, IntegrityError):
            continue
    raise StaleWrite(f"room {event.room_sid} kept changing under {MAX_ATTEMPTS} attempts")


_SQLITE_WRITERS: dict[int, asyncio.Lock] = {}


def _sqlite_writer(engine: AsyncEngine) -> contextlib.AbstractAsyncContextManager[object]:
    """SQLite has one writer at a time; queue this process's writers on a lock rather than in
    SQLite's busy handler, whose growing sleeps add seconds under load. PostgreSQL needs none."""
    if engine.dialect.name != "sqlite":
        return contextlib.nullcontext()
    return _SQLITE_WRITERS.setdefault(id(engine), asyncio.Lock())


async def load_room(engine: AsyncEngine, sid: str) -> Room | None:
    """The room's current state, or None if Warden has never heard of it."""
    async with AsyncSession(engine) as session:
        row = await session.get(RoomRow, sid)
        return room_from_dict(row.state) if row is not None else None


async def _record_once(session: AsyncSession, event: Event, received_at: float, policy: Policy) -> Recorded:
    seen = await session.scalar(select(EventRow.seq).where(col(EventRow.event_id) == event.id))
    if seen is not None:
        row = await session.get(RoomRow, event.room_sid) if event.room_sid else None
        return Recorded(Outcome.DUPLICATE, room_from_dict(row.state) if row is not None else None)
    if not event.room_sid and event.room_name:
        sid = await session.scalar(
            select(RoomRow.sid).where(col(RoomRow.name) == event.room_name).order_by(col(RoomRow.first_seen_at).desc())
        )
        event = replace(event, room_sid=sid or "")
    if not event.room_sid:
        session.add(_event_row(event, received_at))
        return Recorded(Outcome.NO_ROOM)

    # FOR UPDATE queues concurrent writers of one room on PostgreSQL (SQLite's BEGIN IMMEDIATE already
    # does); the version check below still catches any writer that slipped past.
    row = await session.get(RoomRow, event.room_sid, with_for_update=True)
    if row is None:
        decision = transition(Room(event.room_sid, event.room_name), event, now=received_at, policy=policy)
        session.add(_event_row(event, received_at))
        _log_actions(session, event, received_at, decision.actions)
        session.add(_new_row(decision.room, event, received_at))
        return Recorded(Outcome.APPLIED, decision.room, decision.actions)

    before = room_from_dict(row.state)
    key = order_key(event)
    if key >= (row.last_created_at, row.last_rank):
        decision = transition(before, event, now=received_at, policy=policy)
        room, actions, outcome = decision.room, decision.actions, Outcome.APPLIED
    else:
        history = await _room_events(session, event.room_sid)
        room = fold(Room(row.sid, row.name), [*history, (event, received_at)], policy=policy)
        actions, outcome = new_actions(before, room, policy), Outcome.REFOLDED
        key = (row.last_created_at, row.last_rank)
    if not room.name and event.room_name:
        room = replace(room, name=event.room_name)
    session.add(_event_row(event, received_at))
    _log_actions(session, event, received_at, actions)
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
            deadline_at=room.deadline.at if room.deadline is not None else None,
            recovery=room.recovery,
        )
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        raise StaleWrite(f"room {row.sid} changed since it was read")
    return Recorded(outcome, room, actions)


def _log_actions(session: AsyncSession, event: Event, received_at: float, actions: tuple[Action, ...]) -> None:
    """Decisions go into the room's log beside the events that caused them (never folded)."""
    for i, action in enumerate(actions):
        session.add(
            EventRow(
                event_id=f"{event.id}#{i}",
                room_sid=event.room_sid,
                kind=ACTION_KIND,
                name=type(action).__name__,
                created_at=event.created_at,
                received_at=received_at,
                data=action_to_dict(action),
            )
        )


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
        deadline_at=room.deadline.at if room.deadline is not None else None,
        recovery=room.recovery,
        last_created_at=created_at,
        last_rank=rank,
        first_seen_at=received_at,
        updated_at=received_at,
    )


async def _room_events(session: AsyncSession, room_sid: str) -> list[tuple[Event, float]]:
    rows = await session.execute(
        select(col(EventRow.data), col(EventRow.received_at))
        .where(col(EventRow.room_sid) == room_sid, col(EventRow.kind) != ACTION_KIND)
        .order_by(col(EventRow.seq))
    )
    return [(from_dict(dict(data)), received_at) for data, received_at in rows]

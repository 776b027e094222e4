"""Read-side queries for the operator API: rooms newest first, one room with its timeline."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlmodel import col, select

from workers.events import Event, from_dict
from workers.models import EventRow, RoomRow
from workers.rooms import Room, order_key, room_from_dict

TIMELINE_LIMIT = 1000


@dataclass(frozen=True)
class TimelineEntry:
    event: Event
    received_at: float


@dataclass(frozen=True)
class RoomPage:
    rooms: list[Room]
    total: int


async def list_rooms(engine: AsyncEngine, *, limit: int, offset: int) -> RoomPage:
    """Rooms in the order Warden first heard of them, newest first."""
    async with AsyncSession(engine) as session:
        total = await session.scalar(select(func.count()).select_from(RoomRow)) or 0
        rows = await session.scalars(
            select(RoomRow)
            .order_by(col(RoomRow.first_seen_at).desc(), col(RoomRow.sid))
            .limit(limit)
            .offset(offset)
        )
        return RoomPage([room_from_dict(r.state) for r in rows], total)


async def find_room(engine: AsyncEngine, name: str) -> tuple[Room, list[TimelineEntry]] | None:
    """The newest room called `name`, with its events in the order they were applied."""
    async with AsyncSession(engine) as session:
        row = await session.scalar(
            select(RoomRow)
            .where(col(RoomRow.name) == name)
            .order_by(col(RoomRow.first_seen_at).desc())
            .limit(1)
        )
        if row is None:
            return None
        events = await session.execute(
            select(col(EventRow.data), col(EventRow.received_at))
            .where(col(EventRow.room_sid) == row.sid)
            .order_by(col(EventRow.seq).desc())
            .limit(TIMELINE_LIMIT)
        )
        timeline = [TimelineEntry(from_dict(dict(data)), received_at) for data, received_at in events]
    timeline.reverse()  # oldest first, so that ties keep arrival order in the stable sort
    timeline.sort(key=lambda entry: order_key(entry.event))
    return room_from_dict(row.state), timeline


async def ping(engine: AsyncEngine) -> None:
    """Raise if the database cannot answer a trivial query."""
    async with engine.connect() as connection:
        await connection.execute(text("SELECT 1"))

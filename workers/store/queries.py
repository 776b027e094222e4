"""Read-side queries for the operator API: rooms newest first, one room with its timeline."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlmodel import col, select

from workers.core import order, stored
from workers.core.room import Phase, Room
from workers.store.models import OPEN_PHASE, ROOMS, EventRow, RoomRow

TIMELINE_LIMIT = 1000  # the newest entries of a room's log shown (`WARDEN_TIMELINE_SHOWN`); the rest counted


@dataclass(frozen=True)
class TimelineEntry:
    """One line of a room's log: a webhook, one of Warden's own events, or a decided action."""

    kind: str
    name: str
    participant: str | None
    created_at: int
    received_at: float
    data: dict[str, Any]

    event_id: str = ""


@dataclass(frozen=True)
class RoomLog:
    """A room, the newest entries of its log in the order they were applied, and the entries before
    them counted by type (`earlier`: empty when the whole log is shown)."""

    room: Room
    timeline: list[TimelineEntry]
    earlier: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class RoomPage:
    rooms: list[Room]
    total: int
    confirmed: dict[str, float] = field(default_factory=dict)  # sid → when reconciliation last confirmed it


async def list_rooms(engine: AsyncEngine, *, limit: int, offset: int, phase: str | None = None) -> RoomPage:
    """Rooms in the order Warden first heard of them, newest first (only those in `phase`, if given)."""
    where = [col(RoomRow.phase) == phase] if phase else []
    async with AsyncSession(engine) as session:
        total = await session.scalar(select(func.count()).select_from(RoomRow).where(*where)) or 0
        rows = await session.scalars(
            select(RoomRow)
            .where(*where)
            .order_by(col(RoomRow.first_seen_at).desc(), col(RoomRow.sid))
            .limit(limit)
            .offset(offset)
        )
        found = list(rows)
        confirmed = {r.sid: r.confirmed_at for r in found if r.confirmed_at is not None}
        return RoomPage([stored.from_dict(r.state) for r in found], total, confirmed)


async def find_room(engine: AsyncEngine, name: str, *, shown: int = TIMELINE_LIMIT) -> RoomLog | None:
    """The newest room called `name` (or the room whose sid it is: names with a phone number in them
    are shown masked, and linked by sid), with its newest `shown` events in the order they were applied
    and the earlier ones counted by type (a webinar's thousands of joins are a count, not a page)."""
    async with AsyncSession(engine) as session:
        row = await session.scalar(
            select(RoomRow)
            .where(col(RoomRow.name) == name)
            .order_by(col(RoomRow.first_seen_at).desc())
            .limit(1)
        )
        if row is None:
            row = await session.scalar(select(RoomRow).where(col(RoomRow.sid) == name))
        if row is None:
            return None
        rows = await session.scalars(
            select(EventRow)
            .where(col(EventRow.room_sid) == row.sid)
            .order_by(col(EventRow.seq).desc())
            .limit(shown)
        )
        found = list(rows)
        earlier: dict[str, int] = {}
        if len(found) == shown:
            counted = await session.execute(
                select(col(EventRow.kind), func.count())
                .where(col(EventRow.room_sid) == row.sid, col(EventRow.seq) < found[-1].seq)
                .group_by(col(EventRow.kind))
            )
            earlier = {str(kind): int(n) for kind, n in sorted(counted.all())}
        timeline = [
            TimelineEntry(
                r.kind, r.name, r.participant_identity, r.created_at, r.received_at, dict(r.data), r.event_id
            )
            for r in found
        ]
    timeline.reverse()  # oldest first, so that ties keep arrival order in the stable sort
    return RoomLog(stored.from_dict(row.state), sorted(timeline, key=_timeline_order(timeline)), earlier)


def _timeline_order(timeline: list[TimelineEntry]) -> Callable[[TimelineEntry], tuple[int, ...]]:
    """The order the fold applies events (`order.placed`: LiveKit's second, then arrival; each of
    Warden's own events at the second of the newest webhook before it); each decision right after the
    event that caused it (its id is `<event id>#<n>`). `timeline` is in arrival order."""
    keys: dict[str, tuple[int, ...]] = {}
    newest = -1
    for arrival, entry in enumerate(timeline):
        if "#" not in entry.event_id:
            second = order.second_at(entry.kind, entry.created_at, newest)
            keys[entry.event_id] = (second, arrival, -1)
            newest = max(newest, second)

    def key(entry: TimelineEntry) -> tuple[int, ...]:
        cause, _, n = entry.event_id.rpartition("#")
        if cause in keys:
            return (*keys[cause][:2], int(n))
        return keys.get(entry.event_id, (entry.created_at, len(timeline), 0))

    return key


async def overdue_deadlines(engine: AsyncEngine, cutoff: float, limit: int = 1000) -> list[tuple[str, int]]:
    """(room sid, deadline attempt) of the deadlines at or before `cutoff` of open rooms (a room with
    several expected agents may have several)."""
    async with AsyncSession(engine) as session:
        rows = await session.scalars(
            select(RoomRow)
            .where(col(RoomRow.deadline_at) <= cutoff, col(RoomRow.phase) != Phase.CLOSED)
            .order_by(col(RoomRow.deadline_at))
            .limit(limit)
        )
        due = []
        for row in rows:
            room = stored.from_dict(row.state)
            for view in room.watchers():
                if view.deadline is not None and view.deadline.at <= cutoff:
                    due.append((room.sid, view.deadline.attempt))
        return due


async def open_rooms(engine: AsyncEngine) -> dict[str, tuple[str, float, float]]:
    """sid → (name, updated_at, confirmed_at or 0) of every room Warden has not seen finish."""
    async with engine.connect() as connection:
        rows = await connection.execute(
            select(ROOMS.c.sid, ROOMS.c.name, ROOMS.c.updated_at, ROOMS.c.confirmed_at).where(OPEN_PHASE)
        )
        return {sid: (name, updated_at, confirmed_at or 0.0) for sid, name, updated_at, confirmed_at in rows}


async def unconfirmed(engine: AsyncEngine, phase: Phase, since: float, limit: int) -> list[tuple[str, str]]:
    """(sid, name) of up to `limit` rooms in `phase` that no check has confirmed since `since`, those
    confirmed least recently (or never) first."""
    confirmed = func.coalesce(ROOMS.c.confirmed_at, 0.0)
    async with engine.connect() as connection:
        rows = await connection.execute(
            select(ROOMS.c.sid, ROOMS.c.name)
            .where(ROOMS.c.phase == phase.value, confirmed < since)
            .order_by(confirmed, ROOMS.c.sid)
            .limit(limit)
        )
        return [(sid, name) for sid, name in rows]


async def load_rooms(engine: AsyncEngine, sids: list[str], *, legacy_agent: str = "") -> dict[str, Room]:
    """sid → current state of those of `sids` Warden knows."""
    if not sids:
        return {}
    async with engine.connect() as connection:
        rows = await connection.execute(select(ROOMS.c.state).where(ROOMS.c.sid.in_(sids)))
        found = (stored.from_dict(state, legacy_agent=legacy_agent) for (state,) in rows)
        return {room.sid: room for room in found}


async def confirmations(engine: AsyncEngine, sids: list[str]) -> dict[str, float]:
    """sid → when reconciliation last found the room as Warden knows it (rooms never confirmed left out)."""
    if not sids:
        return {}
    async with engine.connect() as connection:
        rows = await connection.execute(
            select(ROOMS.c.sid, ROOMS.c.confirmed_at).where(
                ROOMS.c.sid.in_(sids), ROOMS.c.confirmed_at.is_not(None)
            )
        )
        return {sid: float(at) for sid, at in rows}


async def known_sids(engine: AsyncEngine, sids: list[str]) -> set[str]:
    """Which of `sids` Warden has a room for (open or closed), asked in batches."""
    found: set[str] = set()
    async with AsyncSession(engine) as session:
        for start in range(0, len(sids), 500):
            rows = await session.scalars(
                select(col(RoomRow.sid)).where(col(RoomRow.sid).in_(sids[start : start + 500]))
            )
            found.update(rows)
    return found


async def ping(engine: AsyncEngine) -> None:
    """Raise if the database cannot answer a trivial query."""
    async with engine.connect() as connection:
        await connection.execute(text("SELECT 1"))

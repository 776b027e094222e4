"""Incidents in the database: open-or-join, one-time claims, the action log, resolution, and reads.

Every step that must happen once per outage, across many rooms, jobs and worker processes, is a
single conditional statement: the unique `open_key` makes concurrent openers join one incident, and
`UPDATE ... WHERE <column> IS NULL` lets exactly one caller claim a step. The steps that call out
(restart, rollback) are leases: a claim with no recorded outcome (`<step>_done_at`) after the lease is
taken again, so a worker killed mid-call does not leave the step claimed and never done. The outbox
rows a step decides (its alerts, the deploy hook) are written in the claim's own transaction.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Any

from sqlalchemy import Float, String, and_, exists, func, insert, literal, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from workers.store import outbox, room_agents
from workers.store.engine import dialect_insert, writing
from workers.store.models import INCIDENT_ACTIONS, INCIDENT_ROOMS, INCIDENTS, ROOM_AGENTS, ROOMS

CLAIMS = ("alerted_open_at", "restart_claimed_at", "followup_claimed_at", "rollback_claimed_at")
# The steps that call out (and may die doing it): each claim's column, and the column of its outcome.
LEASED = {"restart_claimed_at": "restart_done_at", "rollback_claimed_at": "rollback_done_at"}


@dataclass(frozen=True)
class Incident:
    id: str
    agent_name: str
    reason: str
    opened_at: float
    resolved_at: float | None
    restarted_at: float | None
    rooms: tuple[tuple[str, str, float, float | None], ...] = ()  # (sid, name, added_at, recovered_at)
    actions: tuple[tuple[float, str, str], ...] = ()  # (at, action, outcome)
    restart_done_at: float | None = None  # the restart step has its outcome (restarted or not)

    @property
    def waiting_rooms(self) -> int:
        return sum(1 for *_, recovered in self.rooms if recovered is None)


async def open_or_join(
    engine: AsyncEngine, agent_name: str, reason: str, rooms: list[tuple[str, str]], now: float
) -> tuple[str, bool]:
    """The open incident of `agent_name` (opened now if there is none) with `rooms` added to it;
    True when this call opened it."""
    async with writing(engine) as connection:
        new_id = f"IN_{uuid.uuid4().hex[:12]}"
        opened = await connection.scalar(
            dialect_insert(connection, INCIDENTS)
            .values(id=new_id, agent_name=agent_name, open_key=agent_name, reason=reason[:512], opened_at=now)
            .on_conflict_do_nothing(index_elements=["open_key"])
            .returning(INCIDENTS.c.id)
        )
        if opened:  # in the same transaction, so "opened" is always the incident's first line
            await connection.execute(
                insert(INCIDENT_ACTIONS).values(
                    incident_id=opened, at=now, action="opened", outcome=reason[:1024]
                )
            )
        incident_id = opened or await connection.scalar(
            select(INCIDENTS.c.id).where(INCIDENTS.c.open_key == agent_name)
        )
        if rooms:  # one executemany (compiled once), not one statement per room
            await connection.execute(
                dialect_insert(connection, INCIDENT_ROOMS).on_conflict_do_nothing(
                    index_elements=["incident_id", "room_sid"]
                ),
                [
                    {"incident_id": incident_id, "room_sid": sid, "room_name": name, "added_at": now}
                    for sid, name in rooms
                ],
            )
    return str(incident_id), opened is not None


async def join_open(
    engine: AsyncEngine, incident_id: str, agent_name: str, room: tuple[str, str], now: float
) -> bool:
    """Add `room` to incident `incident_id` in one statement, if that incident is still the agent's open
    one; True when the room was added (False: the incident is closed, or the room was in it already)."""
    sid, name = room
    source = select(INCIDENTS.c.id, literal(sid, String), literal(name, String), literal(now, Float)).where(
        INCIDENTS.c.id == incident_id, INCIDENTS.c.open_key == agent_name
    )
    async with writing(engine) as connection:
        added = await connection.execute(
            dialect_insert(connection, INCIDENT_ROOMS)
            .from_select(["incident_id", "room_sid", "room_name", "added_at"], source)
            .on_conflict_do_nothing(index_elements=["incident_id", "room_sid"])
        )
    return bool(added.rowcount == 1)


class Claim(Enum):
    """How a claim on an incident step went."""

    FIRST = "first"  # claimed, by nobody before: the caller does the step
    AGAIN = "again"  # claimed again, its holder's lease ran out with no outcome: the caller resumes it
    TAKEN = "taken"  # claimed for good (or its outcome is recorded): never again
    LATER = "later"  # held by someone whose lease runs, or refused by the cooldown: perhaps later

    def __bool__(self) -> bool:
        return self in (Claim.FIRST, Claim.AGAIN)


async def claim(
    engine: AsyncEngine,
    incident_id: str,
    column: str,
    now: float,
    *,
    cooldown: float = 0.0,
    lease: float = 0.0,
    then: Callable[[list[str]], list[dict[str, Any]]] | None = None,
) -> Claim:
    """Set `column` (one of `CLAIMS`) if nobody has, writing the outbox rows `then(the incident's room
    names)` in the same transaction. With `cooldown`, refuse while another incident of the same agent
    claimed that step less than `cooldown` ago. With `lease` (a step of `LEASED`), a claim whose step
    has no outcome (`finish`) `lease` seconds later is taken again: its holder died."""
    assert column in CLAIMS
    target = INCIDENTS.c[column]
    done = INCIDENTS.c[LEASED[column]] if lease else None
    async with engine.connect() as connection:  # most callers find it claimed: no write lock for them
        row = (
            await connection.execute(
                select(target, done if done is not None else literal(None)).where(
                    INCIDENTS.c.id == incident_id
                )
            )
        ).first()
    if row is None:
        return Claim.TAKEN
    claimed_at, done_at = row
    if done_at is not None or (claimed_at is not None and not lease):
        return Claim.TAKEN
    if claimed_at is not None and claimed_at >= now - lease:
        return Claim.LATER
    first = and_(INCIDENTS.c.id == incident_id, target.is_(None))
    if cooldown:
        earlier = INCIDENTS.alias("earlier")
        agent = select(INCIDENTS.c.agent_name).where(INCIDENTS.c.id == incident_id).scalar_subquery()
        recent = exists().where(
            earlier.c.agent_name == agent, earlier.c.id != incident_id, earlier.c[column] > now - cooldown
        )
        first = and_(first, ~recent)
    async with writing(engine) as connection:
        if (await connection.execute(update(INCIDENTS).where(first).values({column: now}))).rowcount == 1:
            if then is not None:
                names = await connection.scalars(
                    select(INCIDENT_ROOMS.c.room_name)
                    .where(INCIDENT_ROOMS.c.incident_id == incident_id)
                    .order_by(INCIDENT_ROOMS.c.added_at, INCIDENT_ROOMS.c.room_sid)
                )
                await outbox.write(connection, then(list(names)))
            return Claim.FIRST
        if done is None:
            return Claim.LATER if cooldown else Claim.TAKEN
        expired = and_(INCIDENTS.c.id == incident_id, done.is_(None), target < now - lease)
        if (await connection.execute(update(INCIDENTS).where(expired).values({column: now}))).rowcount == 1:
            return Claim.AGAIN
    return Claim.LATER


async def finish(
    engine: AsyncEngine,
    incident_id: str,
    column: str,
    now: float,
    *,
    then: list[dict[str, Any]] | None = None,
) -> bool:
    """Record that the leased step `column` has its outcome (it is never claimed again), writing the
    outbox rows `then` in the same transaction; True for the one caller that recorded it."""
    done = INCIDENTS.c[LEASED[column]]
    async with writing(engine) as connection:
        result = await connection.execute(
            update(INCIDENTS).where(INCIDENTS.c.id == incident_id, done.is_(None)).values({done: now})
        )
        if result.rowcount != 1:
            return False
        await outbox.write(connection, then or [])
    return True


async def unfinished(engine: AsyncEngine, agent_name: str, now: float, lease: float) -> list[tuple[str, str]]:
    """(incident id, step column) of the agent's open incident whose leased steps were claimed more than
    `lease` seconds ago and have no outcome: their holder died, someone must take them up again."""
    async with engine.connect() as connection:
        row = (await connection.execute(select(INCIDENTS).where(INCIDENTS.c.open_key == agent_name))).first()
    if row is None:
        return []
    return [
        (row.id, column)
        for column, done in LEASED.items()
        if row._mapping[column] is not None
        and row._mapping[done] is None
        and row._mapping[column] < now - lease
    ]


async def note(engine: AsyncEngine, incident_id: str, at: float, action: str, outcome: str) -> None:
    """Append to the incident's action log."""
    async with writing(engine) as connection:
        await connection.execute(
            insert(INCIDENT_ACTIONS).values(
                incident_id=incident_id, at=at, action=action, outcome=outcome[:1024]
            )
        )


async def mark_restarted(engine: AsyncEngine, incident_id: str, now: float) -> bool:
    """A restart landed: the restart step has its outcome. True for the first caller (a Cloud restart
    and a deploy hook may both land: the rooms get one fresh start)."""
    async with writing(engine) as connection:
        result = await connection.execute(
            update(INCIDENTS)
            .where(INCIDENTS.c.id == incident_id, INCIDENTS.c.restarted_at.is_(None))
            .values(restarted_at=now, restart_done_at=func.coalesce(INCIDENTS.c.restart_done_at, now))
        )
    return bool(result.rowcount == 1)


Resolution = Callable[[str, float, int], list[dict[str, Any]]]


async def room_recovered(
    engine: AsyncEngine, agent_name: str, room_sid: str, now: float, *, then: Resolution | None = None
) -> Incident | None:
    """Mark the room (and every other room of the incident that needs nothing now) recovered in its
    agent's open incident; resolve the incident when no room waits any more, writing the outbox rows
    `then(incident id, opened at, rooms)` in the same transaction. Returns the incident if this call
    resolved it. `room_sid=""` only settles the others."""
    async with writing(engine) as connection:
        # The incident's row first (PostgreSQL: FOR UPDATE; SQLite's writer holds the whole database):
        # recoveries of one incident take its room rows one after the other, never each other's halves.
        incident_id = await connection.scalar(
            select(INCIDENTS.c.id).where(INCIDENTS.c.open_key == agent_name).with_for_update()
        )
        if incident_id is None:
            return None
        await connection.execute(
            update(INCIDENT_ROOMS)
            .where(
                INCIDENT_ROOMS.c.incident_id == incident_id,
                INCIDENT_ROOMS.c.room_sid == room_sid,
                INCIDENT_ROOMS.c.recovered_at.is_(None),
            )
            .values(recovered_at=now)
        )
        # Rooms that joined the incident while merely waiting (at the restart) and got their agent
        # before missing an SLA never report a recovery: a room that no longer needs *this* agent
        # (whatever its other agents' state) has recovered.
        await connection.execute(
            update(INCIDENT_ROOMS)
            .where(
                INCIDENT_ROOMS.c.incident_id == incident_id,
                INCIDENT_ROOMS.c.recovered_at.is_(None),
                ~room_agents.needs(agent_name, INCIDENT_ROOMS.c.room_sid),
            )
            .values(recovered_at=now)
        )
        waiting = await connection.scalar(
            select(func.count())
            .select_from(INCIDENT_ROOMS)
            .where(INCIDENT_ROOMS.c.incident_id == incident_id, INCIDENT_ROOMS.c.recovered_at.is_(None))
        )
        if waiting:
            return None
        resolved = await connection.execute(
            update(INCIDENTS)
            .where(INCIDENTS.c.id == incident_id, INCIDENTS.c.resolved_at.is_(None))
            .values(resolved_at=now, open_key=None)
        )
        if resolved.rowcount != 1:
            return None
        if then is not None:
            opened_at = await connection.scalar(
                select(INCIDENTS.c.opened_at).where(INCIDENTS.c.id == incident_id)
            )
            rooms = await connection.scalar(
                select(func.count())
                .select_from(INCIDENT_ROOMS)
                .where(INCIDENT_ROOMS.c.incident_id == incident_id)
            )
            await outbox.write(connection, then(str(incident_id), float(opened_at or now), int(rooms or 0)))
    return await get_incident(engine, str(incident_id))


async def waiting_rooms(engine: AsyncEngine, agent_name: str) -> list[tuple[str, str]]:
    """(sid, name) of every room whose people wait for `agent_name` (not for another of its agents)."""
    async with engine.connect() as connection:
        rows = await connection.execute(
            select(ROOMS.c.sid, ROOMS.c.name)
            .join(ROOM_AGENTS, ROOM_AGENTS.c.room_sid == ROOMS.c.sid)
            .where(room_agents.waiting_for(agent_name))
            .order_by(ROOMS.c.sid)
        )
        return [(sid, name) for sid, name in rows]


async def get_incident(engine: AsyncEngine, incident_id: str) -> Incident | None:
    """One incident with its rooms and actions."""
    async with engine.connect() as connection:
        row = (await connection.execute(select(INCIDENTS).where(INCIDENTS.c.id == incident_id))).first()
        if row is None:
            return None
        rooms = await connection.execute(
            select(
                INCIDENT_ROOMS.c.room_sid,
                INCIDENT_ROOMS.c.room_name,
                INCIDENT_ROOMS.c.added_at,
                INCIDENT_ROOMS.c.recovered_at,
            )
            .where(INCIDENT_ROOMS.c.incident_id == incident_id)
            .order_by(INCIDENT_ROOMS.c.added_at, INCIDENT_ROOMS.c.room_sid)
        )
        actions = await connection.execute(
            select(INCIDENT_ACTIONS.c.at, INCIDENT_ACTIONS.c.action, INCIDENT_ACTIONS.c.outcome)
            .where(INCIDENT_ACTIONS.c.incident_id == incident_id)
            .order_by(INCIDENT_ACTIONS.c.seq)
        )
        return Incident(
            row.id,
            row.agent_name,
            row.reason,
            row.opened_at,
            row.resolved_at,
            row.restarted_at,
            tuple(tuple(r) for r in rooms),
            tuple(tuple(a) for a in actions),
            row.restart_done_at,
        )


async def list_incidents(engine: AsyncEngine, *, limit: int, offset: int) -> tuple[list[Incident], int]:
    """Incidents newest first (with their rooms), and how many there are."""
    async with engine.connect() as connection:
        total = await connection.scalar(select(func.count()).select_from(INCIDENTS)) or 0
        ids = await connection.scalars(
            select(INCIDENTS.c.id).order_by(INCIDENTS.c.opened_at.desc()).limit(limit).offset(offset)
        )
        wanted = list(ids)
    found = [await get_incident(engine, i) for i in wanted]
    return [i for i in found if i is not None], int(total)


async def open_agents(engine: AsyncEngine) -> list[str]:
    """The agents with an open incident."""
    async with engine.connect() as connection:
        rows = await connection.execute(
            select(INCIDENTS.c.agent_name).where(INCIDENTS.c.resolved_at.is_(None))
        )
        return sorted({str(name) for (name,) in rows})

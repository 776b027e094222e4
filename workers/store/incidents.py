"""Incidents in the database: opening and joining, the action log, rooms recovering, and reads.

An incident's steps are transitions of the incident machine, taken under its row's lock
(`workers.store.incident_steps`); here are the rest of its rows: the rooms it covers (`join_open` adds
one in one statement, only while the incident is open), the lines of its log, and the rooms that need
nothing any more, the last of which resolves it (`room_recovered`, a step of the machine too).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Float, String, bindparam, func, insert, or_, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncEngine

from workers.core.incident import IncidentPolicy, IncidentState, Report, Signal
from workers.store import room_agents
from workers.store.engine import dialect_insert, writing
from workers.store.incident_steps import Applied, Rows, apply, join, workers_of
from workers.store.models import INCIDENT_ACTIONS, INCIDENT_ROOMS, INCIDENTS, ROOM_AGENTS, ROOMS

UNALERTED = IncidentPolicy()  # no route to alert: a resolution's line in the log, no outbox rows


@dataclass(frozen=True)
class Incident:
    """An incident as the API and the dashboard show it: its state, rooms and log."""

    id: str
    agent_name: str
    reason: str
    opened_at: float
    resolved_at: float | None
    restarted_at: float | None
    rooms: tuple[tuple[str, str, float, float | None], ...] = ()  # (sid, name, added_at, recovered_at)
    actions: tuple[tuple[float, str, str, bool], ...] = ()  # (at, action, outcome, carried_out)
    state: IncidentState = IncidentState.OPEN
    kind: str = "outage"  # or "capacity": its workers are full
    workers: tuple[tuple[str, int], ...] = ()  # the workers it named, with the jobs each served none of
    acknowledged_at: float | None = None  # an operator acknowledged it (issue 28), by name
    acknowledged_by: str = ""
    deployment: str = ""  # whose restart it takes or shares ("" : nothing to restart)
    maintenance: bool = False  # a maintenance window covers its agent: no restart, no alert

    @property
    def waiting_rooms(self) -> int:
        return sum(1 for *_, recovered in self.rooms if recovered is None)


async def open_or_join(
    engine: AsyncEngine, agent_name: str, reason: str, rooms: list[tuple[str, str]], now: float
) -> tuple[str, bool]:
    """The open incident of `agent_name` with `rooms` added to it; True when this call opened it (an
    incident opened here, not by an outage's report, is OPEN with its "opened" line and nothing more)."""
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
        if rooms:
            await join(connection, str(incident_id), rooms, now)
    return str(incident_id), opened is not None


def _join_open(insert_for: Any) -> Any:
    source = select(
        INCIDENTS.c.id,
        bindparam("sid", type_=String),
        bindparam("name", type_=String),
        bindparam("now", type_=Float),
    ).where(INCIDENTS.c.id == bindparam("incident"), INCIDENTS.c.open_key == bindparam("agent"))
    # PostgreSQL: FOR SHARE waits for a recovery holding the incident's row (`_LOCK_OPEN`) and reads the
    # row it leaves, so a room never joins an incident resolved at that moment (SQLite: one writer)
    source = source.with_for_update(read=True)
    return (
        insert_for(INCIDENT_ROOMS)
        .from_select(["incident_id", "room_sid", "room_name", "added_at"], source)
        .on_conflict_do_nothing(index_elements=["incident_id", "room_sid"])
    )


# Built once, the statements of every room's join and recovery (constructing a statement per call
# costs more than executing it).
_JOIN_OPEN = {"postgresql": _join_open(postgresql_insert), "sqlite": _join_open(sqlite_insert)}
_LOCK_OPEN = select(INCIDENTS).where(INCIDENTS.c.open_key == bindparam("agent")).with_for_update()
_ROOM_RECOVERED = (
    update(INCIDENT_ROOMS)
    .where(
        INCIDENT_ROOMS.c.incident_id == bindparam("incident"),
        INCIDENT_ROOMS.c.room_sid == bindparam("sid"),
        INCIDENT_ROOMS.c.recovered_at.is_(None),
    )
    .values(recovered_at=bindparam("now"))
)
# One of the incident's rooms that has not recovered and still needs the agent, if any.
_ONE_WAITING = (
    select(INCIDENT_ROOMS.c.room_sid)
    .where(
        INCIDENT_ROOMS.c.incident_id == bindparam("incident"),
        INCIDENT_ROOMS.c.recovered_at.is_(None),
        room_agents.needs(bindparam("agent", type_=String), INCIDENT_ROOMS.c.room_sid),
    )
    .limit(1)
)


async def join_open(
    engine: AsyncEngine, incident_id: str, agent_name: str, room: tuple[str, str], now: float
) -> bool:
    """Add `room` to incident `incident_id` in one statement, if that incident is still the agent's open
    one; True when the room was added (False: the incident is closed, or the room was in it already)."""
    sid, name = room
    values = {"incident": incident_id, "agent": agent_name, "sid": sid, "name": name, "now": now}
    async with writing(engine) as connection:
        added = await connection.execute(_JOIN_OPEN[connection.dialect.name], values)
    return bool(added.rowcount == 1)


async def note(
    engine: AsyncEngine,
    incident_id: str,
    at: float,
    action: str,
    outcome: str,
    *,
    carried_out: bool = True,
    landed_on: str | None = None,
) -> None:
    """Append to the incident's action log (`carried_out` False: decided in observe mode, not made;
    `landed_on`: the key of the alert route on which the alert it notes landed)."""
    async with writing(engine) as connection:
        await connection.execute(
            insert(INCIDENT_ACTIONS).values(
                incident_id=incident_id,
                at=at,
                action=action,
                outcome=outcome[:1024],
                carried_out=carried_out,
                landed_on=landed_on,
            )
        )


async def landed_on(engine: AsyncEngine, incident_id: str) -> set[str]:
    """The keys of the alert routes on which an alert of the incident landed (its log's `landed_on`)."""
    async with engine.connect() as connection:
        found = await connection.scalars(
            select(INCIDENT_ACTIONS.c.landed_on)
            .where(INCIDENT_ACTIONS.c.incident_id == incident_id, INCIDENT_ACTIONS.c.landed_on.is_not(None))
            .distinct()
        )
        return {str(key) for key in found}


async def room_recovered(
    engine: AsyncEngine,
    agent_name: str,
    room_sid: str,
    now: float,
    *,
    policy: IncidentPolicy = UNALERTED,
    rows: Rows | None = None,
    canary_passed: bool = False,
) -> Applied | None:
    """Mark the room recovered in its agent's open incident; when no room waits any more, mark every
    other room of the incident that needs nothing now recovered too, and take the incident machine's
    RECOVERED in the same transaction (its alerts' outbox rows from `rows`). The step, if this call
    resolved the incident. `room_sid=""` (the sweep, every `WARDEN_SWEEP_SECONDS`) marks those other
    rooms whether rooms wait or not; so does `canary_passed`, whose step is CANARY_PASSED, taken
    whether rooms wait or not (a step that changed nothing included)."""
    async with writing(engine) as connection:
        # The incident's row first (PostgreSQL: FOR UPDATE; SQLite's writer holds the whole database):
        # recoveries of one incident take its room rows one after the other, never each other's halves.
        row = (await connection.execute(_LOCK_OPEN, {"agent": agent_name})).first()
        if row is None:
            return None
        await connection.execute(_ROOM_RECOVERED, {"incident": row.id, "sid": room_sid, "now": now})
        if room_sid and not canary_passed:
            # While one room still waits the incident stays open: no need to visit the others (O(rooms)
            # at each of an outage's recoveries), which the sweep or the last recovery marks.
            waiting = {"incident": row.id, "agent": agent_name}
            if (await connection.execute(_ONE_WAITING, waiting)).first() is not None:
                return None
        # Rooms that joined the incident while merely waiting (at the restart) and got their agent
        # before missing an SLA never report a recovery: a room that no longer needs *this* agent
        # (whatever its other agents' state) has recovered.
        await connection.execute(
            update(INCIDENT_ROOMS)
            .where(
                INCIDENT_ROOMS.c.incident_id == row.id,
                INCIDENT_ROOMS.c.recovered_at.is_(None),
                ~room_agents.needs(agent_name, INCIDENT_ROOMS.c.room_sid),
            )
            .values(recovered_at=now)
        )
        counts = (
            await connection.execute(
                select(func.count(), func.count(INCIDENT_ROOMS.c.recovered_at)).where(
                    INCIDENT_ROOMS.c.incident_id == row.id
                )
            )
        ).one()
        rooms, recovered = int(counts[0]), int(counts[1])
        if canary_passed:
            report = Report(Signal.CANARY_PASSED, now, rooms=rooms, waiting=rooms - recovered)
            return await apply(connection, row, report, policy, rows)
        if rooms > recovered:
            return None
        return await apply(connection, row, Report(Signal.RECOVERED, now, rooms=rooms), policy, rows)


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
            select(
                INCIDENT_ACTIONS.c.at,
                INCIDENT_ACTIONS.c.action,
                INCIDENT_ACTIONS.c.outcome,
                INCIDENT_ACTIONS.c.carried_out,
            )
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
            tuple((at, action, outcome, bool(done)) for at, action, outcome, done in actions),
            IncidentState(row.state),
            row.kind,
            workers_of(row.workers),
            row.acknowledged_at,
            row.acknowledged_by,
            row.deployment,
            bool(row.maintenance),
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


OBSERVE_MODE = "observe mode"  # the log line of an incident opened in observe mode (`observed_open`)


async def observed_open(engine: AsyncEngine) -> list[tuple[str, str]]:
    """(id, agent) of the open incidents observe mode opened, or whose log holds a decision it did not
    carry out (an incident opened in act mode and continued in observe mode)."""
    async with engine.connect() as connection:
        rows = await connection.execute(
            select(INCIDENTS.c.id, INCIDENTS.c.agent_name)
            .where(
                INCIDENTS.c.open_key.is_not(None),
                INCIDENTS.c.id.in_(
                    select(INCIDENT_ACTIONS.c.incident_id).where(
                        or_(
                            INCIDENT_ACTIONS.c.carried_out.is_(False),
                            INCIDENT_ACTIONS.c.action == OBSERVE_MODE,
                        )
                    )
                ),
            )
            .order_by(INCIDENTS.c.id)
        )
        return [(str(i), str(agent)) for i, agent in rows]

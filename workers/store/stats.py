"""Figures over all rooms and incidents, for the dashboard and the web process's `/metrics`."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from workers.core.room import FALLBACK_STATE, Phase
from workers.store.models import INCIDENT_ROOMS, INCIDENTS, ROOMS


@dataclass(frozen=True)
class TimeToAgent:
    """Rooms Warden first heard of since some moment: how long their people waited for the agent, and
    how many still wait with no agent yet."""

    seconds: list[float]
    still_waiting: int


async def phase_counts(engine: AsyncEngine) -> dict[str, int]:
    """How many rooms are in each phase (closed ones included)."""
    async with engine.connect() as connection:
        rows = await connection.execute(select(ROOMS.c.phase, func.count()).group_by(ROOMS.c.phase))
        return {str(phase): int(count) for phase, count in rows}


async def time_to_agent_since(engine: AsyncEngine, since: float) -> TimeToAgent:
    async with engine.connect() as connection:
        seconds = await connection.scalars(
            select(ROOMS.c.time_to_agent).where(
                ROOMS.c.first_seen_at >= since, ROOMS.c.time_to_agent.is_not(None)
            )
        )
        waiting = await connection.scalar(
            select(func.count())
            .select_from(ROOMS)
            .where(
                ROOMS.c.first_seen_at >= since,
                ROOMS.c.time_to_agent.is_(None),
                ROOMS.c.phase.in_([Phase.WAITING.value, FALLBACK_STATE]),
            )
        )
        return TimeToAgent([float(s) for s in seconds], int(waiting or 0))


async def open_incidents_by_room(engine: AsyncEngine, room_sids: list[str]) -> dict[str, str]:
    """room sid → id of the open incident that covers it, for the given rooms."""
    if not room_sids:
        return {}
    async with engine.connect() as connection:
        rows = await connection.execute(
            select(INCIDENT_ROOMS.c.room_sid, INCIDENT_ROOMS.c.incident_id)
            .join(INCIDENTS, INCIDENTS.c.id == INCIDENT_ROOMS.c.incident_id)
            .where(INCIDENTS.c.resolved_at.is_(None), INCIDENT_ROOMS.c.room_sid.in_(room_sids))
        )
        return {str(sid): str(incident) for sid, incident in rows}


async def open_incident_count(engine: AsyncEngine) -> int:
    async with engine.connect() as connection:
        count = await connection.scalar(
            select(func.count()).select_from(INCIDENTS).where(INCIDENTS.c.resolved_at.is_(None))
        )
        return int(count or 0)

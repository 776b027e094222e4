"""Which rooms the `liveness` cron looks at next: open rooms where an expected agent of theirs is present
(`room_agents` in agent_present or agent_active), not looked at since a given time, least recently first."""

from __future__ import annotations

from sqlalchemy import exists, func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from workers.core.room import Phase
from workers.store.models import OPEN_PHASE, ROOM_AGENTS, ROOMS

_HERE = (Phase.AGENT_PRESENT, Phase.AGENT_ACTIVE)


async def agents_present(engine: AsyncEngine, since: float, limit: int) -> list[tuple[str, str]]:
    """(sid, name) of up to `limit` open rooms with an expected agent present that no look has confirmed
    since `since`, those confirmed least recently (or never) first."""
    confirmed = func.coalesce(ROOMS.c.confirmed_at, 0.0)
    present = exists().where(ROOM_AGENTS.c.room_sid == ROOMS.c.sid, ROOM_AGENTS.c.phase.in_(_HERE))
    async with engine.connect() as connection:
        rows = await connection.execute(
            select(ROOMS.c.sid, ROOMS.c.name)
            .where(OPEN_PHASE, confirmed <= since, present)
            .order_by(confirmed, ROOMS.c.sid)
            .limit(limit)
        )
        return [(sid, name) for sid, name in rows]

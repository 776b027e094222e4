"""Which rooms the `liveness` cron looks at next: open rooms whose row shows a phase in which an agent of
theirs can be present, taken in turn by sid from a cursor (read by the phase index and the primary key,
never the whole table; nothing is written for a look that finds nothing new), each with its row's
`version`; and the state of those the cron has not read at that version (`workers.jobs.rooms.looked`)."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from workers.core import stored
from workers.core.room import FALLBACK_STATE, Phase, Room
from workers.store.models import ROOMS

# The phases a room's row can show while an agent of its is present (the row shows the agent most in
# need: a room whose assistant is there and whose notetaker is not shows waiting). The cron keeps those
# whose agent is there, by their state (`Room.views`).
CANDIDATE_PHASES = (Phase.AGENT_PRESENT, Phase.AGENT_ACTIVE, Phase.WAITING, Phase.AGENT_LOST)
_CANDIDATE = ROOMS.c.phase.in_([*(p.value for p in CANDIDATE_PHASES), FALLBACK_STATE])


async def candidate_count(engine: AsyncEngine) -> int:
    """How many rooms are in `CANDIDATE_PHASES`."""
    async with engine.connect() as connection:
        return int(await connection.scalar(select(func.count()).select_from(ROOMS).where(_CANDIDATE)) or 0)


async def candidates_after(engine: AsyncEngine, cursor: str, limit: int) -> list[tuple[str, str, int]]:
    """(sid, name, version) of up to `limit` rooms in `CANDIDATE_PHASES` whose sid comes after `cursor`,
    in sid order."""
    async with engine.connect() as connection:
        rows = await connection.execute(
            select(ROOMS.c.sid, ROOMS.c.name, ROOMS.c.version)
            .where(_CANDIDATE, ROOMS.c.sid > cursor)
            .order_by(ROOMS.c.sid)
            .limit(limit)
        )
        return [(sid, name, version) for sid, name, version in rows]


async def versioned_rooms(
    engine: AsyncEngine, sids: list[str], *, legacy_agent: str = ""
) -> dict[str, tuple[int, Room]]:
    """sid → (version, state) of those of `sids` Warden knows, each state read with its version."""
    if not sids:
        return {}
    async with engine.connect() as connection:
        rows = await connection.execute(select(ROOMS.c.version, ROOMS.c.state).where(ROOMS.c.sid.in_(sids)))
        found = ((version, stored.from_dict(state, legacy_agent=legacy_agent)) for version, state in rows)
        return {room.sid: (version, room) for version, room in found}

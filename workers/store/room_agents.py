"""A row per expected agent (`room_agents`), so that the store can ask which rooms wait for *this* agent:
the `rooms` row shows only the agent most in need.

`rows` is the one mapping from a room to its rows; the room writer saves them with `write` in the
room's own transaction (under the room's row lock, so two writers never touch a room's agents at
once), and the migration that carried existing rooms over used the same mapping (`rows_of_state`).
The room's own watch before its agents are known (`Room.watch`) is no expected agent and has no row.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, and_, bindparam, delete, exists, select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from workers.core import stored
from workers.core.room import WAITING_PHASES, Recovery, Room
from workers.store.models import ROOM_AGENTS


def rows(room: Room) -> list[dict[str, Any]]:
    """The room's `room_agents` rows: one per expected agent, with that agent's phase, recovery and
    next deadline."""
    return [
        {
            "room_sid": room.sid,
            "agent": view.agent,
            "phase": view.phase,
            "recovery": view.recovery,
            "deadline_at": view.deadline.at if view.deadline is not None else None,
            "waiting_since": view.waiting_since,
            "redispatches": view.redispatches,
            "updated_at": room.updated_at,
        }
        for view in room.views
    ]


def rows_of_state(state: dict[str, Any], *, legacy_agent: str) -> list[dict[str, Any]]:
    """`rows` of a room as the `rooms` row stores it (`legacy_agent`: `WARDEN_AGENT_NAME`, whom a room
    stored before views existed was watched for)."""
    return rows(stored.from_dict(state, legacy_agent=legacy_agent))


def _upsert(insert_for: Any) -> Any:
    statement = insert_for(ROOM_AGENTS)
    kept = {c.name: statement.excluded[c.name] for c in ROOM_AGENTS.c if not c.primary_key}
    return statement.on_conflict_do_update(index_elements=["room_sid", "agent"], set_=kept)


# Built once: constructing a statement per call costs more than executing it.
_UPSERT = {"postgresql": _upsert(postgresql_insert), "sqlite": _upsert(sqlite_insert)}
_DELETE = delete(ROOM_AGENTS).where(
    ROOM_AGENTS.c.room_sid == bindparam("b_sid"), ROOM_AGENTS.c.agent == bindparam("b_agent")
)


async def write(connection: AsyncConnection, saved: Sequence[tuple[Room | None, Room]]) -> None:
    """Make the rows of each saved room (`(before, after)`: the room as read, None for a room new to
    Warden, and as saved) what `rows(after)` says, in the open transaction: every agent's row written
    (inserted or updated), the rows of agents the room no longer expects deleted."""
    current = sorted(
        (r for _, after in saved for r in rows(after)), key=lambda r: (r["room_sid"], r["agent"])
    )
    gone = sorted(
        {(before.sid, v.agent) for before, after in saved if before is not None for v in before.views}
        - {(r["room_sid"], r["agent"]) for r in current}
    )
    if gone:
        await connection.execute(_DELETE, [{"b_sid": sid, "b_agent": agent} for sid, agent in gone])
    if current:
        await connection.execute(_UPSERT[connection.dialect.name], current)


def waiting_for(agent: str) -> ColumnElement[bool]:
    """Rows of `agent` in rooms whose people wait for it."""
    return and_(ROOM_AGENTS.c.agent == agent, ROOM_AGENTS.c.phase.in_(WAITING_PHASES))


def needs(agent: str | ColumnElement[str], room_sid: ColumnElement[str]) -> ColumnElement[bool]:
    """The room `room_sid` still needs `agent`: its people wait for it, or Warden is at work on it."""
    return exists(
        select(ROOM_AGENTS.c.room_sid).where(
            ROOM_AGENTS.c.room_sid == room_sid,
            ROOM_AGENTS.c.agent == agent,
            ROOM_AGENTS.c.phase.in_(WAITING_PHASES) | (ROOM_AGENTS.c.recovery != Recovery.NONE),
        )
    )

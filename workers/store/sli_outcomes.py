"""Service levels' outcomes (`sli_outcomes`): one row per (room, agent) whose fate is known
(`workers.core.sli`), written by the room writer in the room's own transaction, so an outcome exists
exactly when the room state that decided it does. `INSERT ... ON CONFLICT DO NOTHING RETURNING`: only
the rows new to the table come back, and only those are counted (`warden_sli_events_total`): a
redelivered webhook, a job run twice or a re-fold that decides again counts nothing more.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import case, func, or_, select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from workers.core import sli
from workers.core.room import Room
from workers.store.models import SLI_OUTCOMES

T = SLI_OUTCOMES.c


def _insert(insert_for: Any) -> Any:
    statement = insert_for(SLI_OUTCOMES).on_conflict_do_nothing(index_elements=["room_sid", "agent"])
    return statement.returning(T.room_sid, T.agent)


# Built once: constructing a statement per call costs more than executing it.
_INSERT = {"postgresql": _insert(postgresql_insert), "sqlite": _insert(sqlite_insert)}


async def write(
    connection: AsyncConnection, saved: Sequence[tuple[Room | None, Room]]
) -> dict[str, tuple[sli.Outcome, ...]]:
    """Write the outcomes each saved room (`(before, after)`) newly knows, in the open transaction; the
    ones new to the table, by room sid (what to count once the transaction commits)."""
    decided = {
        (after.sid, o.agent): (after, o) for before, after in saved for o in sli.outcomes(before, after)
    }
    if not decided:
        return {}
    rows = [
        {
            "room_sid": sid,
            "agent": agent,
            "room_name": room.name,
            "decided_at": o.decided_at,
            "on_time": o.on_time,
            "served": o.served,
            "how": o.how,
        }
        for (sid, agent), (room, o) in sorted(decided.items())
    ]
    written: dict[str, list[sli.Outcome]] = {}
    for sid, agent in (await connection.execute(_INSERT[connection.dialect.name], rows)).all():
        written.setdefault(sid, []).append(decided[(sid, agent)][1])
    return {sid: tuple(found) for sid, found in written.items()}


# --- reading -----------------------------------------------------------------------------------------

_SUMS = (
    T.agent,
    func.count().label("total"),
    func.sum(case((T.on_time, 1), else_=0)).label("on_time"),
    func.sum(case((T.served, 1), else_=0)).label("served"),
)


async def totals(engine: AsyncEngine, since: float) -> dict[str, tuple[int, int, int]]:
    """(total, on time, served) by agent, of the outcomes decided at `since` or later (the index on
    `decided_at`: only the window's rows are read)."""
    query = select(*_SUMS).where(T.decided_at >= since).group_by(T.agent)
    async with engine.connect() as connection:
        rows = await connection.execute(query)
        return {r.agent: (int(r.total), int(r.on_time or 0), int(r.served or 0)) for r in rows}


async def series(
    engine: AsyncEngine, agent: str, since: float, step: float
) -> list[tuple[float, int, int, int]]:
    """(bucket start, total, on time, served) of `agent`'s outcomes from `since` on, by `step` seconds;
    buckets with none left out."""
    bucket = func.floor((T.decided_at - since) / step)
    query = (
        select(bucket.label("b"), *_SUMS[1:])
        .where(T.decided_at >= since, T.agent == agent)
        .group_by(bucket)
        .order_by(bucket)
    )
    async with engine.connect() as connection:
        rows = await connection.execute(query)
        return [
            (since + float(r.b) * step, int(r.total), int(r.on_time or 0), int(r.served or 0)) for r in rows
        ]


async def spent(engine: AsyncEngine, agent: str, since: float, limit: int = 50) -> list[dict[str, Any]]:
    """`agent`'s outcomes in the window that spent budget (late or not served), newest first."""
    query = (
        select(T.room_sid, T.room_name, T.decided_at, T.on_time, T.served, T.how)
        .where(T.decided_at >= since, T.agent == agent, or_(~T.on_time, ~T.served))
        .order_by(T.decided_at.desc())
        .limit(limit)
    )
    async with engine.connect() as connection:
        return [dict(r._mapping) for r in await connection.execute(query)]

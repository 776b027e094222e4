"""Canary runs in the database (`canary_runs`): a row when a run starts, its verdict when it ends, and
the reads the schedule, the API and the dashboard make. A run's number `n` names its room."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import insert, select, update
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncEngine

from workers.core.canary import Outcome, Run, room_name
from workers.store.engine import writing
from workers.store.models import CANARY_RUNS

C = CANARY_RUNS.c


def _run(row: RowMapping) -> Run:
    return Run(
        n=row["n"],
        agent=row["agent_name"],
        room=row["room"],
        started_at=row["started_at"],
        outcome=Outcome(row["outcome"]),
        seconds=row["seconds"],
        finished_at=row["finished_at"],
        detail=row["detail"],
    )


async def start(engine: AsyncEngine, agent: str, now: float) -> Run:
    """A new run of `agent`'s canary, `running`, its room named after its number."""
    async with writing(engine) as connection:
        n = await connection.scalar(
            insert(CANARY_RUNS)
            .values(agent_name=agent, room="", started_at=now, outcome=Outcome.RUNNING.value)
            .returning(C.n)
        )
        room = room_name(agent, int(n))
        await connection.execute(update(CANARY_RUNS).where(C.n == n).values(room=room[:256]))
    return Run(int(n), agent, room[:256], now)


async def finish(
    engine: AsyncEngine,
    n: int,
    outcome: Outcome,
    now: float,
    *,
    seconds: float | None = None,
    detail: str = "",
) -> bool:
    """Record run `n`'s outcome, once: False when it was finished already (by another worker's cleanup)."""
    async with writing(engine) as connection:
        result = await connection.execute(
            update(CANARY_RUNS)
            .where(C.n == n, C.outcome == Outcome.RUNNING.value)
            .values(outcome=outcome.value, seconds=seconds, finished_at=now, detail=detail[:512])
        )
    return bool(result.rowcount)


async def unfinished(engine: AsyncEngine, agent: str) -> list[Run]:
    """`agent`'s runs still `running` (its own current one, or one a dead worker left)."""
    async with engine.connect() as connection:
        rows = await connection.execute(
            select(CANARY_RUNS).where(C.agent_name == agent, C.outcome == Outcome.RUNNING.value).order_by(C.n)
        )
        return [_run(row) for row in rows.mappings()]


async def recent(engine: AsyncEngine, agent: str, limit: int) -> list[Run]:
    """`agent`'s last `limit` runs, newest first."""
    async with engine.connect() as connection:
        rows = await connection.execute(
            select(CANARY_RUNS).where(C.agent_name == agent).order_by(C.n.desc()).limit(limit)
        )
        return [_run(row) for row in rows.mappings()]


async def agents(engine: AsyncEngine) -> list[str]:
    """Every agent with a run on record (canaries configured once and dropped since included)."""
    async with engine.connect() as connection:
        return list(
            await connection.scalars(select(C.agent_name).group_by(C.agent_name).order_by(C.agent_name))
        )


async def recent_by_agent(engine: AsyncEngine, names: Sequence[str], limit: int) -> dict[str, list[Run]]:
    """The last `limit` runs of each agent in `names` and of every agent with runs on record."""
    every = sorted(set(names) | set(await agents(engine)))
    return {agent: await recent(engine, agent, limit) for agent in every}

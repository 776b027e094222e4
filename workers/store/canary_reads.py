"""What the operator surface reads of canary runs beyond their latest ones (`canary_runs.recent`): when
each agent's canary last passed, however long ago (a week of failures pushes it out of any page)."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from workers.core.canary import Outcome
from workers.store.models import CANARY_RUNS

C = CANARY_RUNS.c


async def last_successes(engine: AsyncEngine, names: Sequence[str]) -> dict[str, float]:
    """When each agent's newest passing run ended (an agent that never passed is not in the answer)."""
    found: dict[str, float] = {}
    async with engine.connect() as connection:
        for agent in names:
            finished = await connection.scalar(
                select(C.finished_at)
                .where(C.agent_name == agent, C.outcome == Outcome.PASSED.value)
                .order_by(C.n.desc())
                .limit(1)
            )
            if finished is not None:
                found[agent] = float(finished)
    return found

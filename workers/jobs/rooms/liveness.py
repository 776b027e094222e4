"""The `liveness` cron: each room with people and a present agent is looked at (ListParticipants) at
least every `WARDEN_LIVENESS_SECONDS`, so that Warden sees its agents' `lk.agent.state` (no webhook
reports an attribute's change) and a stuck one is found (`workers.core.liveness`).

It runs every `LIVENESS_TICK_SECONDS` (one worker a tick) and looks at `Settings.liveness_batch` rooms
at most, so LiveKit sees at most `WARDEN_LIVENESS_CALLS_PER_SECOND` calls a second from it however
many rooms there are: with more rooms than the bound allows in one period, each is looked at less
often (least recently looked at first). A look is recorded as a reconciliation only when it is news.
"""

from __future__ import annotations

import asyncio
from typing import Any

from workers.jobs.rooms.crons import look
from workers.jobs.runtime.context import context
from workers.store.liveness import agents_present
from workers.store.queries import load_rooms
from workers.store.writer import confirm

CONCURRENT_LOOKS = 16  # calls in flight at once within a tick


async def liveness(ctx: dict[str, Any]) -> dict[str, int]:
    """Cron: look at the rooms with an agent present that are due (news is recorded); how many were due
    and how many looked at (a room nobody is in any more is due, and passed over)."""
    worker = context(ctx)
    settings, clock = worker.settings, worker.effects.clock
    now = clock()
    due = await agents_present(worker.engine, now - settings.warden_liveness_seconds, settings.liveness_batch)
    # Claimed first (as looked at now): a tick that overlaps a slow one takes the next rooms.
    await confirm(worker.engine, [sid for sid, _ in due], now)
    rooms = await load_rooms(worker.engine, [sid for sid, _ in due], legacy_agent=worker.rules.legacy_agent)
    wanted = [(sid, name) for sid, name in due if sid in rooms and rooms[sid].someone_here]
    gate = asyncio.Semaphore(CONCURRENT_LOOKS)

    async def one(sid: str, name: str) -> bool | None:
        async with gate:
            return await look(ctx, sid, name, rooms[sid], dispatches=False)

    answers = await asyncio.gather(*(one(sid, name) for sid, name in wanted))
    return {"due": len(due), "looked": sum(a is not None for a in answers)}

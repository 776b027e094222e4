"""The `liveness` cron: each room with people and a present agent is looked at (ListParticipants) about
every `WARDEN_LIVENESS_SECONDS`, so that Warden sees its agents' `lk.agent.state` (no webhook reports an
attribute's change) and a stuck one is found (`workers.core.liveness`).

It runs every `LIVENESS_TICK_SECONDS` (one worker a tick) and takes the next rooms in turn (by sid, from
a cursor kept in Redis): as many a tick as spread the rooms over the period, at most four times
`Settings.liveness_batch` (rooms with no agent there, or nobody else, cost no call), and calls LiveKit
for `Settings.liveness_batch` of them at most: LiveKit sees at most `WARDEN_LIVENESS_CALLS_PER_SECOND`
calls a second however many rooms there are; with more rooms than that allows in one period, each is
looked at less often. A look is recorded as a reconciliation only when it is news (an agent's turn
between `listening`, `idle` and `speaking` is none: `workers.core.liveness`, rule 4); nothing is written
otherwise (the rooms' `confirmed_at` is reconciliation's, which takes rooms confirmed least recently
first). The rooms' states are read again only when their row changed since this worker last read them,
and a listing the last look found no news in, of a room unchanged since, is no news again
(`workers.jobs.rooms.looked`). One room's failure is its own (logged and counted; the other looks'
results are kept); a `Retry` (the database unavailable) ends the tick
(`workers.jobs.runtime.retry.each_alone`).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from workers.core.errors import UpstreamError
from workers.core.events import Fact
from workers.core.liveness import quiet_turns, steady
from workers.core.room import Phase, Room
from workers.jobs.rooms.crons import record_if_news
from workers.jobs.rooms.looked import Kept
from workers.jobs.runtime.context import context
from workers.jobs.runtime.retry import each_alone
from workers.settings import LIVENESS_TICK_SECONDS
from workers.store.liveness import candidate_count, candidates_after, versioned_rooms

log = logging.getLogger("warden.worker")

CURSOR_KEY = "warden:liveness:cursor"  # the sid of the last room taken
CONCURRENT_LOOKS = 16  # calls in flight at once within a tick
TAKEN_PER_CALL = 4  # rooms a tick may take per call it may make (rooms waiting for an agent cost none)
_HERE = (Phase.AGENT_PRESENT, Phase.AGENT_ACTIVE)


def share(tick: int, rooms: int, period: float) -> int:
    """How many of `rooms` the tick numbered `tick` takes so that each is taken once per `period`
    seconds: the ticks' shares add up to `rooms` over any `period` (one room in a 15-s period: one tick
    in fifteen takes it)."""
    per_tick = rooms * LIVENESS_TICK_SECONDS / period
    return int((tick + 1) * per_tick) - int(tick * per_tick)


def _watched(room: Room) -> bool:
    """Does the room have people and an expected agent of its present (its state worth a look)?"""
    return room.someone_here and any(v.phase in _HERE for v in room.views)


async def liveness(ctx: dict[str, Any]) -> dict[str, int]:
    """Cron: look at this tick's share of the rooms an agent may be in (news is recorded); how many
    were taken, how many looked at (a room with no agent there or nobody else is passed over) and how
    many failed on their own (logged)."""
    worker = context(ctx)
    settings, engine, redis = worker.settings, worker.engine, ctx["redis"]
    tick = int(worker.effects.clock()) // LIVENESS_TICK_SECONDS
    total = await candidate_count(engine)
    batch = settings.liveness_batch
    wanted = min(batch * TAKEN_PER_CALL, share(tick, total, settings.warden_liveness_seconds))
    if not wanted:
        return {"taken": 0, "looked": 0, "failed": 0}
    cursor = await redis.get(CURSOR_KEY)
    taken = await candidates_after(engine, cursor.decode() if cursor else "", wanted)
    if len(taken) < wanted:  # the end of the rooms: on from the first
        first = {sid for sid, _, _ in taken}
        taken += [r for r in await candidates_after(engine, "", wanted - len(taken)) if r[0] not in first]
    if not taken:
        return {"taken": 0, "looked": 0, "failed": 0}
    rooms = await _read(ctx, [(sid, version) for sid, _, version in taken])
    due = [(sid, name) for sid, name, _ in taken if sid in rooms and _watched(rooms[sid].room)]
    # At most `batch` calls: the rooms after the last one looked at are the next tick's.
    await redis.set(CURSOR_KEY, due[batch - 1][0] if len(due) > batch else taken[-1][0])
    due = due[:batch]
    gate = asyncio.Semaphore(CONCURRENT_LOOKS)

    async def one(sid: str, name: str) -> bool | None:
        async with gate:
            return await _look(ctx, sid, name, rooms[sid])

    done = await asyncio.gather(*(one(sid, name) for sid, name in due), return_exceptions=True)
    failed = sum(isinstance(d, BaseException) for d in done)
    answers = each_alone("liveness", "room", [name for _, name in due], done)
    return {"taken": len(taken), "looked": sum(a is not None for a in answers), "failed": failed}


async def _read(ctx: dict[str, Any], taken: list[tuple[str, int]]) -> dict[str, Kept]:
    """sid → the room as this worker keeps it, read again from the database only when its row's version
    is not the one kept (a room gone since is left out)."""
    worker = context(ctx)
    looked, rules = worker.looked, worker.rules
    rooms = {sid: kept for sid, version in taken if (kept := looked.get(sid, version, rules)) is not None}
    unread = [sid for sid, _ in taken if sid not in rooms]
    for sid, (version, room) in (
        await versioned_rooms(worker.engine, unread, legacy_agent=rules.legacy_agent)
    ).items():
        rooms[sid] = looked.keep(sid, version, room)
    return rooms


async def _look(ctx: dict[str, Any], sid: str, name: str, kept: Kept) -> bool | None:
    """List who is in the room and record it as a reconciliation when that is news (an agent's turn
    between quiet states is none: `quiet_turns`). True: found as Warden knows it (nothing recorded);
    False: recorded; None: LiveKit did not answer (logged, skipped)."""
    effects = context(ctx).effects
    try:
        present = await effects.presence.participants(name)
    except UpstreamError as exc:
        log.warning("looking at room %s skipped: %s", name, exc)
        return None
    fact = Fact(at=effects.clock(), room_exists=present is not None, participants=present or ())
    seen = quiet_turns(kept.room, fact.participants)
    if present is not None and seen == kept.quiet:
        return True  # the listing the last look found no news in, of the room unchanged since (rule 5)
    found = await record_if_news(ctx, sid, name, kept.room, fact, seen)
    if found and present is not None and steady(kept.room, seen):
        kept.quiet = seen
    return found

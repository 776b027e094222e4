"""Retention: delete what is older than `WARDEN_RETENTION`, in small batches.

What goes, once older than the cutoff (and only then):
- closed rooms (by their last update) with their expected agents' rows and their events;
- events of no known room (a heartbeat for a room Warden never heard of);
- resolved incidents (by their resolution) with their rooms and actions;
- dead letters an operator retried (by when the job failed); the others wait for a person;
- outbox rows undelivered since the cutoff (their room is long gone; retrying them helps nobody);
- finished canary runs (by when they started);
- service levels' outcomes (by when they were decided: `WARDEN_SLO_WINDOW` is at most the retention).
Open rooms and open incidents are never deleted, however old.

Each batch is its own short transaction, so webhooks and deadlines wait for one batch at most. A
batch takes its rooms' row locks in sid order, as the room writer does, and deletes a room only if it
is still closed and old under that lock: a late webhook for the room either lands before (the room is
then recent, and stays) or after (its event stays, and the writer starts the room afresh).

A table whose deletion fails (logged) leaves the others to go on: the next run tries it again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter

from sqlalchemy import ColumnElement, Table, and_, delete, func, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine

from workers.core.room import Phase
from workers.store.engine import connection_lost, writing
from workers.store.models import (
    CANARY_RUNS,
    DEAD_LETTERS,
    EVENTS,
    INCIDENT_ACTIONS,
    INCIDENT_ROOMS,
    INCIDENTS,
    OUTBOX,
    ROOM_AGENTS,
    ROOM_CHECKPOINTS,
    ROOMS,
    SLI_OUTCOMES,
)
from workers.store.runs import passed_over

log = logging.getLogger("warden.worker")

ROOM_BATCH = 100  # rooms per transaction (with their events: a few thousand rows at most)
ROW_BATCH = 1000  # rows per transaction for the tables without children
WHAT = (
    "rooms",
    "room_agents",
    "events",
    "incidents",
    "incident_rooms",
    "incident_actions",
    "dead_letters",
    "outbox",
    "canary_runs",
    "sli_outcomes",
)


async def prune(engine: AsyncEngine, cutoff: float, *, budget_seconds: float = 20.0) -> dict[str, int]:
    """Delete what is older than `cutoff` (Unix seconds), batch after batch, until nothing is left or
    `budget_seconds` have passed (the next run goes on). Returns how many rows went, by table. A step
    that fails on its own table (a lock or busy timeout: logged; anything else, a bug: `passed_over`) is
    left to the next run and the next step goes on; the database unreachable ends the run."""
    pruned: Counter[str] = Counter()
    stop_at = time.monotonic() + budget_seconds
    steps = {
        "rooms": _rooms,
        "events of no room": _orphan_events,
        "incidents": _incidents,
        "dead letters": _dead_letters,
        "outbox rows": _outbox,
        "canary runs": _canary_runs,
        "service level outcomes": _sli_outcomes,
    }
    for name, step in steps.items():
        try:
            while time.monotonic() < stop_at:
                done = await step(engine, cutoff)
                pruned.update(done)
                if not any(done.values()):
                    break
                await asyncio.sleep(0)  # let the jobs waiting on this process's write lock go first
        except Exception as exc:
            if isinstance(exc, OSError) or connection_lost(exc):  # every step would meet it alike
                raise
            if isinstance(exc, OperationalError):
                log.warning("retention: deleting %s failed (%s)", name, type(exc).__name__)
            else:
                passed_over("retention", "table", name, exc)
    return {what: pruned[what] for what in WHAT if pruned[what]}


async def closed_rooms_older_than(engine: AsyncEngine, cutoff: float) -> int:
    """How many closed rooms retention has yet to delete (a backlog: the worker's cron is not running)."""
    async with engine.connect() as connection:
        count = await connection.scalar(
            select(func.count()).select_from(ROOMS).where(_old_closed_rooms(cutoff))
        )
        return int(count or 0)


def _old_closed_rooms(cutoff: float) -> ColumnElement[bool]:
    return and_(ROOMS.c.phase == Phase.CLOSED, ROOMS.c.updated_at < cutoff)


async def _rooms(engine: AsyncEngine, cutoff: float) -> dict[str, int]:
    async with engine.connect() as connection:
        candidates = list(
            await connection.scalars(
                select(ROOMS.c.sid)
                .where(_old_closed_rooms(cutoff))
                .order_by(ROOMS.c.updated_at)
                .limit(ROOM_BATCH)
            )
        )
    if not candidates:
        return {}
    async with writing(engine) as connection:
        sids = list(
            await connection.scalars(
                select(ROOMS.c.sid)
                .where(ROOMS.c.sid.in_(candidates), _old_closed_rooms(cutoff))
                .order_by(ROOMS.c.sid)
                .with_for_update()
            )
        )
        if not sids:
            return {}
        events = await connection.execute(delete(EVENTS).where(EVENTS.c.room_sid.in_(sids)))
        agents = await connection.execute(delete(ROOM_AGENTS).where(ROOM_AGENTS.c.room_sid.in_(sids)))
        await connection.execute(delete(ROOM_CHECKPOINTS).where(ROOM_CHECKPOINTS.c.room_sid.in_(sids)))
        rooms = await connection.execute(delete(ROOMS).where(ROOMS.c.sid.in_(sids)))
    return {"rooms": rooms.rowcount, "room_agents": agents.rowcount, "events": events.rowcount}


async def _orphan_events(engine: AsyncEngine, cutoff: float) -> dict[str, int]:
    return {
        "events": await _batch(
            engine, EVENTS, EVENTS.c.seq, EVENTS.c.room_sid.is_(None), EVENTS.c.received_at < cutoff
        )
    }


async def _dead_letters(engine: AsyncEngine, cutoff: float) -> dict[str, int]:
    old = DEAD_LETTERS.c.failed_at < cutoff
    return {
        "dead_letters": await _batch(
            engine, DEAD_LETTERS, DEAD_LETTERS.c.id, old, DEAD_LETTERS.c.retried_at.is_not(None)
        )
    }


async def _outbox(engine: AsyncEngine, cutoff: float) -> dict[str, int]:
    return {"outbox": await _batch(engine, OUTBOX, OUTBOX.c.id, OUTBOX.c.due_at < cutoff)}


async def _canary_runs(engine: AsyncEngine, cutoff: float) -> dict[str, int]:
    runs = CANARY_RUNS.c
    old = runs.started_at < cutoff
    return {"canary_runs": await _batch(engine, CANARY_RUNS, runs.n, old, runs.finished_at.is_not(None))}


async def _sli_outcomes(engine: AsyncEngine, cutoff: float) -> dict[str, int]:
    """Outcomes decided before `cutoff`, the oldest `ROW_BATCH` (and any decided at the same time as the
    last of them), read by the index on `decided_at`."""
    decided = SLI_OUTCOMES.c.decided_at
    async with engine.connect() as connection:
        oldest = list(
            await connection.scalars(
                select(decided).where(decided < cutoff).order_by(decided).limit(ROW_BATCH)
            )
        )
    if not oldest:
        return {}
    async with writing(engine) as connection:
        deleted = await connection.execute(
            delete(SLI_OUTCOMES).where(decided < cutoff, decided <= oldest[-1])
        )
    return {"sli_outcomes": int(deleted.rowcount)}


async def _batch(
    engine: AsyncEngine, table: Table, key: ColumnElement[object], *where: ColumnElement[bool]
) -> int:
    """Delete up to `ROW_BATCH` rows of `table` matching `where`, found first by an indexed read."""
    async with engine.connect() as connection:
        keys = list(await connection.scalars(select(key).where(*where).limit(ROW_BATCH)))
    if not keys:
        return 0
    async with writing(engine) as connection:
        deleted = await connection.execute(delete(table).where(key.in_(keys), *where))
    return int(deleted.rowcount)


async def _incidents(engine: AsyncEngine, cutoff: float) -> dict[str, int]:
    old = and_(INCIDENTS.c.resolved_at.is_not(None), INCIDENTS.c.resolved_at < cutoff)
    async with engine.connect() as connection:
        ids = list(await connection.scalars(select(INCIDENTS.c.id).where(old).limit(ROOM_BATCH)))
    if not ids:
        return {}
    async with writing(engine) as connection:
        actions = await connection.execute(
            delete(INCIDENT_ACTIONS).where(INCIDENT_ACTIONS.c.incident_id.in_(ids))
        )
        rooms = await connection.execute(delete(INCIDENT_ROOMS).where(INCIDENT_ROOMS.c.incident_id.in_(ids)))
        incidents = await connection.execute(delete(INCIDENTS).where(INCIDENTS.c.id.in_(ids), old))
    return {
        "incidents": incidents.rowcount,
        "incident_rooms": rooms.rowcount,
        "incident_actions": actions.rowcount,
    }

"""Recovery in bulk: an outage's waiting rooms re-checked and re-dispatched in batches, not one room job
each, once the agent's deployment is back.

`fresh_starts(ctx, rooms, incident_id, agent, wait)` is what the escalation calls after a restart
(`workers.escalation.comeback`):

- with a wait (None: the restart grace), each room's fresh start is recorded, `AT_ONCE` at a time (their
  writes share commits); its deadline job re-checks it when the wait is over, as before;
- with no wait (its deployment reports running replicas again), `recover` serves the rooms in batches,
  `BATCHES_AT_ONCE` of `BATCH` rooms at a time (`workers.jobs.rooms.batch`). For a batch: the rooms are
  read in one query and each one's fresh start and the deadline it sets (due at once) are decided in
  memory; the ids of those deadline jobs are held in the queue (`JobQueue.hold`, one round trip), so that
  the room's deadline job (queued by the fresh start's own notice, or by the sweep) is refused while the
  batch works on the room: the work stays single-flight with that job, as if it were the job. The batch
  then asks LiveKit and records as `batch.serve` says; then the holds are given up.

A room the batch cannot serve (unknown, not waiting for the agent, its deadline job already queued or
running, LiveKit unavailable for it, or the batch out of time) goes the per-room way: its fresh start
recorded alone (its deadline job then does the rest, with its own retries), or, when that was
recorded already, its deadline job queued. So does every room of a batch that fails (the database or
Redis unavailable, an error), the failure logged, without stopping the other batches: each room is left
on the fastest way that is safe for it. Nothing is decided differently: the events are the ones the
per-room path records, with the same ids, folded by the same machine, and every decision is in the
room's timeline. A crash at any point loses nothing and does nothing twice: a room whose fresh start was
not recorded waits for its grace deadline (queued at the restart) as before; one whose fresh start was
recorded has a deadline due, which the sweep queues once the hold runs out (the batch's time at most,
`CALL_TIMES` LiveKit timeouts: 30 s by default, plus `HOLD_MARGIN_SECONDS`); its
deadline job asks LiveKit again, and re-dispatches only if no dispatch of the agent was made since.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Sequence
from typing import Any

from workers.core.events import EventKind, Fact, internal
from workers.core.machine import transition
from workers.core.room import Room
from workers.core.rules import Rules
from workers.jobs.rooms.batch import (
    BATCH,
    BATCHES_AT_ONCE,
    HOLD_MARGIN_SECONDS,
    BatchRoom,
    rooms_at_once,
    serve,
    time_limit,
)
from workers.jobs.rooms.jobs import fresh_start
from workers.jobs.rooms.steps import deadline_passed, first_check
from workers.jobs.runtime.context import context
from workers.queue.jobs import ON_DEADLINE, queue_deadline
from workers.store.queries import load_rooms

log = logging.getLogger("warden.worker")

AT_ONCE = 500  # fresh starts with a wait recorded together (a group commit's most: `group.MAX_GROUP`)


async def fresh_starts(
    ctx: dict[str, Any],
    rooms: Sequence[tuple[str, str]],
    incident_id: str,
    agent: str,
    wait: float | None,
    *,
    observed: bool = False,
) -> None:
    """After a restart of `agent`: every waiting room of `rooms` ((sid, name)) gets its fresh start,
    re-checked `wait` seconds later (None: the restart grace; 0: now, in bulk, see the module's doc).
    `observed` (act mode taking over from observe mode): each room the per-room way."""
    if wait is not None and wait <= 0 and not observed:
        await recover(ctx, rooms, incident_id, agent)
        return
    for first in range(0, len(rooms), AT_ONCE):
        chunk = rooms[first : first + AT_ONCE]
        await asyncio.gather(
            *(fresh_start(ctx, sid, name, incident_id, agent, wait, observed=observed) for sid, name in chunk)
        )


async def recover(
    ctx: dict[str, Any], rooms: Sequence[tuple[str, str]], incident_id: str, agent: str
) -> None:
    """`agent`'s deployment is back: each of `rooms` re-checked and re-dispatched now, `BATCH` at a time
    (a single room: its own deadline job, the per-room way). A batch that fails sends its rooms the
    per-room way; the others go on."""
    if len(rooms) == 1:
        ((sid, name),) = rooms
        await fresh_start(ctx, sid, name, incident_id, agent, 0.0)
        return
    # Two batches under way at once, each asking about its share of the rooms at a time
    at_once = rooms_at_once(context(ctx).settings.warden_worker_concurrency)
    chunks = [rooms[first : first + BATCH] for first in range(0, len(rooms), BATCH)]
    for first in range(0, len(chunks), BATCHES_AT_ONCE):
        together = chunks[first : first + BATCHES_AT_ONCE]
        ended = await asyncio.gather(
            *(_batch(ctx, chunk, incident_id, agent, at_once) for chunk in together), return_exceptions=True
        )
        for chunk, result in zip(together, ended, strict=True):
            if isinstance(result, BaseException):
                if not isinstance(result, Exception):
                    raise result
                log.error("recovery in bulk: a batch of %d room(s) failed (%s)", len(chunk), _named(result))
                await _alone(ctx, chunk, incident_id, agent)


async def _batch(
    ctx: dict[str, Any], chunk: Sequence[tuple[str, str]], incident_id: str, agent: str, at_once: int
) -> None:
    """Serve `chunk` as one batch. Its read and its holds failing raise (the caller sends the rooms the
    per-room way); once the rooms are held, every room ends on its way whatever fails."""
    worker = context(ctx)
    at = worker.effects.clock()
    loaded = await load_rooms(
        worker.engine, [sid for sid, _ in chunk], legacy_agent=worker.rules.legacy_agent
    )
    planned = [
        (sid, name, _plan(loaded.get(sid), sid, name, incident_id, agent, at, worker.rules))
        for sid, name in chunk
    ]
    batch = [p for _, _, p in planned if p is not None]
    alone = [(sid, name) for sid, name, p in planned if p is None]
    limit = time_limit(ctx)
    held = await worker.effects.enqueuer.hold(
        ON_DEADLINE, [(r.job_id, (r.sid, r.attempt)) for r in batch], limit + HOLD_MARGIN_SECONDS
    )
    alone += [(r.sid, r.name) for r, ok in zip(batch, held, strict=True) if not ok]
    batch = [r for r, ok in zip(batch, held, strict=True) if ok]
    try:
        async with asyncio.timeout(limit):
            await serve(ctx, batch, at, at_once)
    except TimeoutError:
        log.warning("recovery in bulk: %d room(s) left to their own jobs", sum(not r.done for r in batch))
    except Exception as exc:  # each room not done goes its own way below
        log.error("recovery in bulk: a batch of %d room(s) failed (%s)", len(batch), _named(exc))
    finally:
        await _logged(worker.effects.enqueuer.release([r.job_id for r in batch]), "giving up its holds")
    queued = []
    for r in batch:
        if r.done and r.room.for_attempt(r.attempt) is None:
            continue
        if r.recorded:  # its deadline is due (or left due): its own job asks LiveKit again and goes on
            queued.append(queue_deadline(worker.effects.enqueuer, r.sid, r.attempt))
        else:
            alone.append((r.sid, r.name))
    await _each(queued, "queueing a room's deadline job")
    await _alone(ctx, alone, incident_id, agent)


async def _alone(ctx: dict[str, Any], rooms: Sequence[tuple[str, str]], incident_id: str, agent: str) -> None:
    """The per-room way: each room's fresh start alone, its deadline job (queued by its notice) does the
    rest. One that fails is logged (its grace deadline, queued at the restart, takes it)."""
    starts = [fresh_start(ctx, sid, name, incident_id, agent, 0.0) for sid, name in rooms]
    await _each(starts, "a fresh start")


async def _each(calls: Sequence[Awaitable[Any]], what: str) -> None:
    """Await `calls` together; each failure logged, none stopping the others."""
    for result in await asyncio.gather(*calls, return_exceptions=True):
        if isinstance(result, BaseException):
            if not isinstance(result, Exception):
                raise result
            log.error("recovery in bulk: %s failed (%s)", what, _named(result))


async def _logged(call: Awaitable[Any], what: str) -> None:
    await _each([call], what)


def _named(exc: BaseException) -> str:
    """An error as the log names it: its type alone (its text may hold a room's name or a URL)."""
    return type(exc).__name__


def _plan(
    room: Room | None, sid: str, name: str, incident_id: str, agent: str, at: float, rules: Rules
) -> BatchRoom | None:
    """The room's fresh start (the event `jobs.fresh_start` records, with the same id) and the deadline
    it sets, passed at once; None unless that deadline is due now and asks LiveKit (the room waits)."""
    if room is None:
        return None
    restart = internal(
        EventKind.AGENT_RESTARTED,
        f"agent_restarted:{incident_id}:{sid}:back",
        sid,
        name,
        Fact(at=at, agent=agent, wait=0.0),
    )
    started = transition(room, restart, now=at, rules=rules).room
    view = started.view(agent)
    if (
        view is None
        or view.deadline is None
        or view.deadline.at > at
        or view.deadline.attempt <= room.attempt
    ):
        return None
    attempt = view.deadline.attempt
    fired = deadline_passed(sid, name, attempt, at, agent)
    decided = first_check(started, fired, attempt, at, rules)
    if decided is None:
        return None
    return BatchRoom(sid, name, agent, attempt, [restart, fired], decided)

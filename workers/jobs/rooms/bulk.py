"""Recovery in bulk: an outage's waiting rooms re-checked and re-dispatched in batches, not one room job
each, once the agent's deployment is back.

`fresh_starts(ctx, rooms, incident_id, agent, wait)` is what the escalation calls after a restart
(`workers.escalation.comeback`):

- with a wait (None: the restart grace), each room's fresh start is recorded, `AT_ONCE` at a time (their
  writes share commits); its deadline job re-checks it when the wait is over, as before;
- with no wait (its deployment reports running replicas again), `recover` serves the rooms in batches,
  `BATCHES_AT_ONCE` of `BATCH` rooms at a time. For a batch: the rooms are read in one query and each one's
  fresh start and the deadline it sets (due at once) are decided in memory; the ids of those deadline jobs are
  held in the queue (`JobQueue.hold`, one round trip), so that the room's deadline job (queued by the fresh
  start's own notice, or by the sweep) is refused while the batch works on the room: the work stays
  single-flight with that job, as if it were the job. LiveKit is asked once for the batch whether the rooms
  exist (`ListRooms` takes many names), then for each room's participants and dispatches, concurrently, at
  most a quarter of `WARDEN_WORKER_CONCURRENCY` rooms (two calls each) at a time; each room's fresh start,
  deadline and LiveKit's answer are recorded as one batch of the room, the batch's rooms in one transaction
  (the group commit takes them together). The steps that follow (evict, re-dispatch: `Dispatcher.redispatch`)
  run concurrently the same way, their answers recorded together; then the holds are given up.

A room the batch cannot serve (unknown, not waiting for the agent, its deadline job already queued or
running, LiveKit unavailable for it, or the batch out of time) goes the per-room way: its fresh start
recorded alone (its deadline job then does the rest, with its own retries), or, when that was
recorded already, its deadline job queued. Nothing is decided differently: the events are the ones the
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
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from workers.core.errors import UpstreamError
from workers.core.events import Event, EventKind, Fact, internal
from workers.core.machine import transition
from workers.core.room import CheckPresence, Redispatch, Room
from workers.core.rules import Rules
from workers.jobs.rooms.jobs import MAX_STEPS, fresh_start, next_question
from workers.jobs.rooms.recording import record
from workers.jobs.runtime import faults
from workers.jobs.runtime.context import context
from workers.queue.jobs import ON_DEADLINE, deadline_job_id, queue_deadline
from workers.store.queries import load_rooms

log = logging.getLogger("warden.worker")

AT_ONCE = 500  # fresh starts with a wait recorded together (a group commit's most: `group.MAX_GROUP`)
BATCH = 100  # rooms served together once the deployment is back
BATCHES_AT_ONCE = 2
CALL_TIMES = 6  # a batch's time at most, in LiveKit call timeouts: rooms left go the per-room way
HOLD_MARGIN_SECONDS = 5.0  # a hold outlasts its batch's time by this much (a crashed batch's runs out)


def rooms_at_once(concurrency: int) -> int:
    """Rooms a batch asks LiveKit about at once: each has two calls under way at most, so the batch's
    calls in flight stay within half of the jobs the worker runs at once (`WARDEN_WORKER_CONCURRENCY`,
    which bounds the calls LiveKit sees)."""
    return max(1, concurrency // 4)


@dataclass
class _Room:
    """A room of the batch: its deadline `attempt` for `agent`, the events that start it, and how far
    the batch took it."""

    sid: str
    name: str
    agent: str
    attempt: int
    events: list[Event]
    room: Room
    recorded: bool = False  # its fresh start, deadline and LiveKit's answer are recorded
    done: bool = False  # nothing left for the batch to do (or to hand on)
    failure: UpstreamError | None = field(default=None, repr=False)

    @property
    def job_id(self) -> str:
        return deadline_job_id(self.sid, self.attempt)


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
    (a single room: its own deadline job, the per-room way)."""
    if len(rooms) == 1:
        ((sid, name),) = rooms
        await fresh_start(ctx, sid, name, incident_id, agent, 0.0)
        return
    # Two batches under way at once: one asks LiveKit while the other's writes commit. Each asks about
    # half of its rooms' share at a time, so the calls in flight stay as bounded as with one.
    at_once = max(1, rooms_at_once(context(ctx).settings.warden_worker_concurrency) // BATCHES_AT_ONCE)
    chunks = [rooms[first : first + BATCH] for first in range(0, len(rooms), BATCH)]
    for first in range(0, len(chunks), BATCHES_AT_ONCE):
        together = chunks[first : first + BATCHES_AT_ONCE]
        await asyncio.gather(*(_batch(ctx, chunk, incident_id, agent, at_once) for chunk in together))


async def _batch(
    ctx: dict[str, Any], chunk: Sequence[tuple[str, str]], incident_id: str, agent: str, at_once: int
) -> None:
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
    limit = CALL_TIMES * worker.settings.warden_livekit_timeout_seconds
    held = await worker.effects.enqueuer.hold(
        ON_DEADLINE, [(r.job_id, (r.sid, r.attempt)) for r in batch], limit + HOLD_MARGIN_SECONDS
    )
    alone += [(r.sid, r.name) for r, ok in zip(batch, held, strict=True) if not ok]
    batch = [r for r, ok in zip(batch, held, strict=True) if ok]
    try:
        async with asyncio.timeout(limit):
            await _serve(ctx, batch, at, at_once)
    except TimeoutError:
        log.warning("recovery in bulk: %d room(s) left to their own jobs", sum(not r.done for r in batch))
    finally:
        await worker.effects.enqueuer.release([r.job_id for r in batch])
    for r in batch:
        if r.done and r.room.for_attempt(r.attempt) is None:
            continue
        if r.recorded:  # its deadline is due (or left due): its own job asks LiveKit again and goes on
            await queue_deadline(worker.effects.enqueuer, r.sid, r.attempt)
        else:
            alone.append((r.sid, r.name))
    # the per-room way: the fresh start alone, its deadline job (queued by its notice) does the rest
    await asyncio.gather(*(fresh_start(ctx, sid, name, incident_id, agent, 0.0) for sid, name in alone))


def _plan(
    room: Room | None, sid: str, name: str, incident_id: str, agent: str, at: float, rules: Rules
) -> _Room | None:
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
    fired = internal(
        EventKind.DEADLINE_PASSED,
        f"deadline_passed:{sid}:{attempt}",
        sid,
        name,
        Fact(attempt, at, agent=agent),
    )
    decided = transition(started, fired, now=at, rules=rules)
    if not any(isinstance(a, CheckPresence) and a.attempt == attempt for a in decided.actions):
        return None
    return _Room(sid, name, agent, attempt, [restart, fired], decided.room)


async def _serve(ctx: dict[str, Any], batch: list[_Room], at: float, at_once: int) -> None:
    """Ask LiveKit about the batch's rooms, record each room's start with the answer, then carry out the
    steps that follow, room by room concurrently."""
    worker = context(ctx)
    effects = worker.effects
    if not batch:
        return
    seen = await effects.presence.observe_many([r.name for r in batch], at_once)
    asked = []
    for r, observed in zip(batch, seen, strict=True):
        if isinstance(observed, UpstreamError) and observed.retryable:
            r.failure = observed  # LiveKit unavailable for it: the per-room way, with its retries
            continue
        answer = effects.presence_answer(r.room, r.agent, r.attempt, observed)
        asked.append((r, [(r.events[0], at), (r.events[1], at), (answer, effects.clock())]))
    recorded = await asyncio.gather(*(record(ctx, events) for _, events in asked), return_exceptions=True)
    gate = asyncio.Semaphore(at_once)
    steps = []
    for (r, _), result in zip(asked, recorded, strict=True):
        if isinstance(result, BaseException):
            if not isinstance(result, Exception):
                raise result
            log.warning("recovery in bulk: room %s not recorded (%s)", r.name, type(result).__name__)
            continue
        r.recorded = True
        steps.append(_steps(ctx, r, result.room, gate))
    await asyncio.gather(*steps)


async def _steps(ctx: dict[str, Any], r: _Room, current: Room | None, gate: asyncio.Semaphore) -> None:
    """The room's deadline steps after LiveKit's answer (as `jobs.on_deadline` carries them out)."""
    effects = context(ctx).effects
    for _ in range(MAX_STEPS):
        question = next_question(current, r.attempt)
        if current is None or question is None:
            break
        try:
            async with gate:
                answer = await effects.execute(question, current)
            if isinstance(question, Redispatch):
                faults.mid_batch()  # a crash test's hook (WARDEN_FAULT_AT); unset, nothing
        except UpstreamError as exc:  # retryable: its deadline job tries again, with its back-off
            r.failure = exc
            return
        if answer is None:
            break
        try:
            current = (await record(ctx, [(answer, effects.clock())])).room
        except Exception as exc:  # the database unavailable: its deadline job records it, asking again
            log.warning("recovery in bulk: room %s not recorded (%s)", r.name, type(exc).__name__)
            return
    r.room, r.done = current or r.room, True

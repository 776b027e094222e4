"""A batch of rooms whose deadline is due, served together: what each room's deadline job would do, for
many rooms at once (recovery in bulk, `workers.jobs.rooms.bulk`; a burst of deadlines,
`workers.jobs.rooms.burst`). The caller holds each room's deadline job id (`JobQueue.hold`), so that
the batch's work on a room is single-flight with that job, as if it were the job.

`serve` asks LiveKit once for the batch whether the rooms exist (`ListRooms` takes many names), then for
each room's participants and dispatches, concurrently, at most `at_once` rooms (two calls each) at a
time; each room's events that start it (its deadline passed, and for a fresh start that one first) and
LiveKit's answer are recorded as one batch of the room, the batch's rooms in one transaction (the group
commit takes them together). The steps that follow (evict, re-dispatch: `Dispatcher.redispatch`) run
concurrently the same way, their answers recorded together. A room the batch cannot finish is marked so
(`recorded`, `done`, `failure`): the caller hands it to its own job. A failure in one room's steps
leaves the others' be.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any

from workers.core.errors import UpstreamError
from workers.core.events import Event
from workers.core.personal import mask_phone
from workers.core.room import Redispatch, Room
from workers.jobs.rooms.recording import record
from workers.jobs.rooms.steps import MAX_STEPS, next_question
from workers.jobs.runtime import faults
from workers.jobs.runtime.context import context
from workers.queue.jobs import deadline_job_id

log = logging.getLogger("warden.worker")

BATCH = 100  # rooms served together
BATCHES_AT_ONCE = 2  # one asks LiveKit while the other's writes commit
CALL_TIMES = 6  # a batch's time at most, in LiveKit call timeouts: rooms left go the per-room way
HOLD_MARGIN_SECONDS = 5.0  # a hold outlasts its batch's time by this much (a crashed batch's runs out)


def rooms_at_once(concurrency: int) -> int:
    """Rooms a batch asks LiveKit about at once: each has two calls under way at most, so the calls in
    flight of `BATCHES_AT_ONCE` batches stay within half of the jobs the worker runs at once
    (`WARDEN_WORKER_CONCURRENCY`, which bounds the calls LiveKit sees)."""
    return max(1, concurrency // 4 // BATCHES_AT_ONCE)


def time_limit(ctx: dict[str, Any]) -> float:
    """A batch's time at most (its holds last `HOLD_MARGIN_SECONDS` longer)."""
    return CALL_TIMES * context(ctx).settings.warden_livekit_timeout_seconds


@dataclass
class BatchRoom:
    """A room of the batch: its deadline `attempt` for `agent`, the events that start it, the room they
    make (in memory), and how far the batch took it."""

    sid: str
    name: str
    agent: str
    attempt: int
    events: list[Event]
    room: Room
    recorded: bool = False  # its start and LiveKit's answer are recorded
    done: bool = False  # its deadline's steps are over (nothing left for its job)
    failure: UpstreamError | None = field(default=None, repr=False)

    @property
    def job_id(self) -> str:
        return deadline_job_id(self.sid, self.attempt)


async def serve(ctx: dict[str, Any], batch: list[BatchRoom], at: float, at_once: int) -> None:
    """Ask LiveKit about the batch's rooms, record each room's start with the answer, then carry out the
    steps that follow, room by room concurrently."""
    effects = context(ctx).effects
    if not batch:
        return
    seen = await effects.presence.observe_many([r.name for r in batch], at_once)
    asked = []
    for r, observed in zip(batch, seen, strict=True):
        if isinstance(observed, UpstreamError) and observed.retryable:
            r.failure = observed  # LiveKit unavailable for it: the per-room way, with its retries
            continue
        answer = effects.presence_answer(r.room, r.agent, r.attempt, observed)
        asked.append((r, [*((e, at) for e in r.events), (answer, effects.clock())]))
    recorded = await asyncio.gather(*(record(ctx, events) for _, events in asked), return_exceptions=True)
    gate = asyncio.Semaphore(at_once)
    steps = []
    for (r, _), result in zip(asked, recorded, strict=True):
        if isinstance(result, BaseException):
            if not isinstance(result, Exception):
                raise result
            log.warning("batch: room %s not recorded (%s)", mask_phone(r.name), type(result).__name__)
            continue
        r.recorded = True
        steps.append((r, _steps(ctx, r, result.room, gate)))
    # every room's steps to their end, whatever the others': the caller gives up its holds after this
    ended = await asyncio.gather(*(s for _, s in steps), return_exceptions=True)
    for (r, _), ending in zip(steps, ended, strict=True):
        if isinstance(ending, BaseException):
            if not isinstance(ending, Exception):
                raise ending
            log.error("batch: room %s left to its own job (%s)", mask_phone(r.name), type(ending).__name__)


async def _steps(ctx: dict[str, Any], r: BatchRoom, current: Room | None, gate: asyncio.Semaphore) -> None:
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
            log.warning("batch: room %s not recorded (%s)", mask_phone(r.name), type(exc).__name__)
            return
    r.room, r.done = current or r.room, True

"""A burst of deadlines: many rooms' deadline jobs falling due together (a thousand SLAs ending in the same
second) served in batches (`workers.jobs.rooms.batch`) instead of a job each.

A deadline job whose room missed its deadline (`jobs.on_deadline`) leads, while it does its own room's
work: it takes up to `BATCH` other deadline jobs due now out of the queue (`JobQueue.hold_due`: jobs no
worker runs and that never ran, each id held instead of queued, so that the sweep or a notice cannot queue
that room's deadline job beside the batch: single-flight as before), reads their rooms in one query,
decides each deadline passed in memory, and serves them as one batch (asking LiveKit about a quarter of
`WARDEN_WORKER_CONCURRENCY` rooms at a time); then it takes the next ones, until none is due, it has led
`LEAD_SECONDS`, or it gave a job back to be run by itself. At most `BATCHES_AT_ONCE` jobs of a process lead
at a time; the others only do their own room.

A room the batch does not finish goes back to its own job, queued again at once (or at its deadline,
when early): one whose deadline is not a first check (the room's recovery under way), one LiveKit is
unavailable for, one not recorded, the batch out of time or failing. A job whose deadline is over (the
agent came) is dropped, as the job would have found it stale. Every room's events are the ones its job
records, with the same ids. A crash at any point loses nothing and does nothing twice: the holds run out
(the batch's time at most, plus `HOLD_MARGIN_SECONDS`), then the sweep queues each room's deadline that
is still due; its job asks LiveKit again and re-dispatches only if no dispatch of the agent was made
since.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from workers.core.room import Recovery, Room
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
from workers.jobs.rooms.steps import deadline_passed, first_check
from workers.jobs.runtime.context import context
from workers.jobs.runtime.retry import JOB_TIMEOUT_SECONDS
from workers.queue.jobs import deadline_job_id, queue_deadline
from workers.store.queries import load_rooms

log = logging.getLogger("warden.worker")

PREFIX = deadline_job_id("", 0).split(":", 1)[0] + ":"  # every deadline job's id starts so
LEAD_SECONDS = 10.0  # a job takes no more batches after leading this long (its own timeout is 30 s)
JOB_MARGIN_SECONDS = 5.0  # a batch ends this long before its leading job's own timeout at the latest
MIN_BATCH_SECONDS = 2.0  # no batch is started with less time than this left

_leading = 0  # jobs of this process leading now


def lead(ctx: dict[str, Any]) -> asyncio.Task[int] | None:
    """Start leading the deadlines due now (see the module's doc) beside the caller's own work, unless
    `BATCHES_AT_ONCE` jobs of this process lead already (None). The task's result: rooms served."""
    global _leading
    if _leading >= BATCHES_AT_ONCE:
        return None
    _leading += 1
    task = asyncio.get_running_loop().create_task(_lead(ctx))
    task.add_done_callback(_led)
    return task


def _led(_: object) -> None:
    global _leading
    _leading -= 1


async def _lead(ctx: dict[str, Any]) -> int:
    worker = context(ctx)
    # a batch here stands in for as many deadline jobs, which would all be asking LiveKit at once: it asks
    # about a quarter of `WARDEN_WORKER_CONCURRENCY` rooms at a time (twice a batch of recovery in bulk)
    at_once = rooms_at_once(worker.settings.warden_worker_concurrency) * BATCHES_AT_ONCE
    started = time.monotonic()
    served, until = 0, started + LEAD_SECONDS
    # every batch ends (and gives its rooms back) before the leading job's own timeout would cancel it
    job_ends = started + JOB_TIMEOUT_SECONDS - JOB_MARGIN_SECONDS
    while (now := time.monotonic()) < until:
        limit = min(time_limit(ctx), job_ends - now)
        if limit < MIN_BATCH_SECONDS:
            break
        try:
            taken = await worker.effects.enqueuer.hold_due(PREFIX, BATCH, limit + HOLD_MARGIN_SECONDS)
        except Exception as exc:  # Redis unavailable: the jobs stay queued, each runs itself
            log.warning("deadline burst: taking due deadline jobs failed (%s)", type(exc).__name__)
            break
        if not taken:
            break
        done, back = await _batch(ctx, taken, limit, at_once)
        served += done
        if back:  # queued again for their own jobs: taking more now could take those back
            break
    return served


async def _batch(ctx: dict[str, Any], taken: list[str], limit: float, at_once: int) -> tuple[int, list[str]]:
    """Serve the rooms of the held deadline jobs `taken` within `limit` seconds (their read included: the
    holds last `HOLD_MARGIN_SECONDS` longer); give every hold up and queue again each job whose work is
    left, also when the batch is cancelled (its job's timeout, the worker's shutdown). (Rooms served, job
    ids queued again.)"""
    worker = context(ctx)
    jobs = dict(zip(taken, map(_job, taken), strict=True))
    at = worker.effects.clock()
    batch: list[BatchRoom] = []
    over: set[str] = set()  # job ids whose deadline is over
    when: dict[str, float] = {}  # job id -> when its own job is to run (others: now)
    try:
        async with asyncio.timeout(limit):
            loaded = await load_rooms(
                worker.engine, [sid for sid, _ in jobs.values()], legacy_agent=worker.rules.legacy_agent
            )
            for job_id, (sid, attempt) in jobs.items():
                planned = _plan(loaded.get(sid), sid, attempt, at, worker.rules)
                if isinstance(planned, BatchRoom):
                    batch.append(planned)
                elif planned is None:
                    over.add(job_id)
                else:  # not a first check, or early: its own job
                    when[job_id] = planned
            await serve(ctx, batch, at, at_once)
    except TimeoutError:
        log.warning("deadline burst: %d room(s) left to their own jobs", sum(not r.done for r in batch))
    except Exception as exc:  # each room not done goes back to its own job
        log.error("deadline burst: a batch of %d job(s) failed (%s)", len(taken), type(exc).__name__)
    except asyncio.CancelledError:  # cancelled: the rooms go back to their own jobs before it ends
        log.warning(
            "deadline burst: cancelled; %d room(s) left to their own jobs", sum(not r.done for r in batch)
        )
        over |= {r.job_id for r in batch if r.done}
        await asyncio.shield(_give_back(ctx, taken, jobs, over, when))
        raise
    over |= {r.job_id for r in batch if r.done}
    return sum(r.done for r in batch), await _give_back(ctx, taken, jobs, over, when)


async def _give_back(
    ctx: dict[str, Any],
    taken: list[str],
    jobs: dict[str, tuple[str, int]],
    over: set[str],
    when: dict[str, float],
) -> list[str]:
    """Give the holds of `taken` up and queue again each job not `over` (at `when`, else now); the job
    ids queued again."""
    enqueuer = context(ctx).effects.enqueuer
    later = [job_id for job_id in taken if job_id not in over]
    try:
        await enqueuer.release(taken)
    except Exception as exc:  # the holds run out; the sweep queues what is still due
        log.error("deadline burst: giving up %d hold(s) failed (%s)", len(taken), type(exc).__name__)
        return []
    queued = await asyncio.gather(
        *(queue_deadline(enqueuer, *jobs[job_id], when.get(job_id)) for job_id in later),
        return_exceptions=True,
    )
    for result in queued:
        if isinstance(result, BaseException):
            if not isinstance(result, Exception):
                raise result
            log.error("deadline burst: queueing a deadline job again failed (%s)", type(result).__name__)
    return later


def _job(job_id: str) -> tuple[str, int]:
    """A deadline job's (room sid, attempt), from its id (`deadline_job_id`)."""
    sid, _, attempt = job_id.removeprefix(PREFIX).rpartition(":")
    return sid, int(attempt)


def _plan(room: Room | None, sid: str, attempt: int, at: float, rules: Rules) -> BatchRoom | float | None:
    """The room's deadline `attempt` passed, decided in memory (the event `jobs.on_deadline` records, with
    the same id), when it is a first check that asks LiveKit; else when its own job should run (the
    deadline's time: now or later), or None when the deadline is over (the job would find it stale)."""
    view = room.for_attempt(attempt) if room is not None else None
    if room is None or view is None or view.deadline is None:
        return None
    if view.recovery is not Recovery.NONE or view.deadline.at > at:
        return view.deadline.at
    fired = deadline_passed(sid, room.name, attempt, at, view.agent)
    decided = first_check(room, fired, attempt, at, rules)
    if decided is None:
        return at
    return BatchRoom(sid, room.name, view.agent, attempt, [fired], decided)

"""Dead letters: a job that fails for a reason no retry fixes is kept in the database, not lost.

ARQ does not retry a job that raises anything but `Retry`, so an unexpected exception (a bug, an event
that cannot be folded) would drop the job's event while LiveKit was told 200. `dead_lettered` wraps
each job function: such a failure is retried `UNEXPECTED_TRIES` times in all, with the usual backoff
(1 s, 2 s ...), in case it was transient after all; then the job's function, arguments, room and
error are kept as a dead letter (`workers.store.dead_letters`) and the job completes. A job whose
`Retry`s (database, Redis or LiveKit unavailable) reach ARQ's `max_tries` is kept the same way rather
than failed by ARQ. An event whose values the database cannot store (`UnstorableEvent`: too long for
its column, say) is kept at once: it is the event's fault, no retry fixes it, and retrying it as an
outage would only hold its room up. A job naming a function this worker does not have (`unknown_job`:
a web process or another worker of a newer release queued it) is retried the same way, so that a worker
that has it may take it, then kept too; `warden retry` runs it once every worker is upgraded. A job
whose statement failed because the database connection was lost (PostgreSQL restarted under it), or
could not get one while PostgreSQL starts up or shuts down (SQLSTATE 57P03) or is stopped (refused), is
retried like an outage, up to `max_tries` (`workers.store.engine.connection_lost`). Cancellation
(shutdown, ARQ's timeout) is ARQ's business and passes through.

Operators see dead letters in `/metrics` (`warden_dead_letters`), the dashboard, `GET
/api/dead-letters` and `warden dead-letters`; `warden retry ID` queues the job again once the cause is
fixed (`workers.queue.jobs.queue_retry`), and a re-run that fails again comes back to the same row.
"""

from __future__ import annotations

import functools
import logging
import re
import traceback
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from arq.worker import Retry
from sqlalchemy.exc import SQLAlchemyError

from workers.core.errors import UnstorableEvent
from workers.jobs.runtime.context import context
from workers.jobs.runtime.retry import retry_delay, retry_later
from workers.queue.jobs import APPLY_WEBHOOK, ESCALATE, HEARTBEAT, ON_DEADLINE, original_job_id
from workers.store.dead_letters import DeadLetter, keep
from workers.store.engine import connection_lost

log = logging.getLogger("warden.worker")

UNEXPECTED_TRIES = 3
DEAD = "dead letter"
# Alert and deploy-hook URLs carry their tokens, and a database or Redis URL its password.
_URL = re.compile(r"\b[a-z][a-z0-9+.-]*://\S+", re.IGNORECASE)

Job = Callable[..., Coroutine[Any, Any, str]]


class UnknownJob(Exception):
    """A queued job names a function this worker does not have."""


def unknown_job(function: str) -> Job:
    """The job run for a queued job whose `function` this worker does not have (see the module's doc)."""

    async def unknown(ctx: dict[str, Any], *args: Any) -> str:
        raise UnknownJob(
            f"this worker has no job {function!r} (queued by a newer release): upgrade the worker, then "
            "retry the job"
        )

    return unknown


def _room(function: str, args: Sequence[Any]) -> tuple[str | None, str | None]:
    """The room (sid, name) a job's arguments name, as far as they do (see `workers.queue.jobs`)."""
    first = args[0] if args else None
    if function == APPLY_WEBHOOK and isinstance(first, dict):
        return first.get("room_sid") or None, first.get("room_name") or None
    if function == ON_DEADLINE and isinstance(first, str):
        return first, None
    if function == HEARTBEAT and isinstance(first, str):
        return None, first
    if function == ESCALATE and len(args) > 1 and isinstance(args[1], str):
        return args[1], None
    return None, None


def redact(text: str) -> str:
    """`text` with every URL replaced by <url>."""
    return _URL.sub("<url>", text)


def describe(exc: BaseException) -> str:
    """An exception as its type and message, without URLs (see `redact`)."""
    message = redact(str(exc))
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


def dead_lettered(function: str, job: Job, *, max_tries: int) -> Job:
    """`job`, registered as `function` with ARQ's `max_tries`, kept as a dead letter when it fails for
    good instead of failing in ARQ (see the module's doc)."""

    @functools.wraps(job)
    async def run(ctx: dict[str, Any], *args: Any) -> str:
        job_try = int(ctx["job_try"])
        try:
            return await job(ctx, *args)
        except Retry as exc:
            if job_try < max_tries:
                raise
            error, trace = f"retried {job_try} times: {describe(exc.__cause__ or exc)}", ""
        except UnstorableEvent as exc:  # names the event and the column; its place in the code says nothing
            error, trace = describe(exc), ""
        except Exception as exc:
            if job_try < (max_tries if connection_lost(exc) else UNEXPECTED_TRIES):
                delay = retry_delay(job_try)
                log.warning("job %s failed (%s); retried in %.0fs", ctx["job_id"], describe(exc), delay)
                raise Retry(defer=delay) from exc
            error, trace = describe(exc), "\n" + redact("".join(traceback.format_exception(exc))).rstrip()
            if isinstance(exc, UnknownJob):  # its place in the code says nothing
                trace = ""
        await _keep(ctx, function, list(args), error, job_try)
        log.error(
            "job %s (%s) kept as a dead letter after %d tries: %s%s",
            ctx["job_id"],
            function,
            job_try,
            error,
            trace,
        )
        return DEAD

    return run


async def _keep(ctx: dict[str, Any], function: str, args: list[Any], error: str, attempts: int) -> None:
    worker = context(ctx)
    room_sid, room_name = _room(function, args)
    letter = DeadLetter(
        original_job_id(str(ctx["job_id"])),
        function,
        args,
        room_sid,
        room_name,
        error,
        attempts,
        worker.effects.clock(),
    )
    try:
        await keep(worker.engine, letter)
    except (SQLAlchemyError, OSError) as exc:
        raise retry_later(
            ctx, "dead letter %s not kept (%s); retried in %.0fs", letter.id, type(exc).__name__
        ) from exc

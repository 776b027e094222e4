"""Which jobs the running workers run, as they say in Redis: so that a web process upgraded before the
workers refuses a request no running worker would apply, instead of answering 202 for it.

Every `EVERY_SECONDS` each worker sets `{queue}:runs:{function}` for each job function it has, for
`FOR_SECONDS` (`advertising`). Before it queues a job that a release added (an operator's request,
`operator_action`), the web asks whether a worker said lately that it runs it (`runs`, one EXISTS):
when none did — no worker is up, or the workers run a release before the job (one from before this
module says nothing) — it answers 503 saying so. A job queued all the same (a worker downgraded since)
is not lost: a worker keeps a job it has no function for as a dead letter (`workers.queue.claiming`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable

from redis.asyncio import Redis
from redis.exceptions import RedisError

log = logging.getLogger("warden.worker")

EVERY_SECONDS = 20.0
FOR_SECONDS = 60  # three missed refreshes: a worker stopped for a minute no longer counts


def runs_key(queue: str, function: str) -> str:
    return f"{queue}:runs:{function}"


async def advertise(redis: Redis, queue: str, functions: Iterable[str]) -> None:
    """Say once that this worker runs `functions` (for `FOR_SECONDS`)."""
    async with redis.pipeline(transaction=False) as pipe:
        for function in functions:
            pipe.set(runs_key(queue, function), b"1", ex=FOR_SECONDS)
        await pipe.execute()


async def advertising(redis: Redis, queue: str, functions: Iterable[str]) -> None:
    """Say every `EVERY_SECONDS` that this worker runs `functions`, until cancelled (the worker stops)."""
    names = tuple(functions)
    while True:
        try:
            await advertise(redis, queue, names)
        except (RedisError, OSError) as exc:  # the worker's own polling says more; try again later
            log.warning("could not say which jobs this worker runs (%s)", type(exc).__name__)
        await asyncio.sleep(EVERY_SECONDS)


async def runs(redis: Redis, queue: str, function: str) -> bool:
    """Did a worker say within `FOR_SECONDS` that it runs `function`? Raises Redis's errors."""
    return bool(await redis.exists(runs_key(queue, function)))

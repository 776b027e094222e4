"""`burst_worker`: an ARQ worker for queue tests, on one queue, that runs what is queued and stops."""

from __future__ import annotations

from typing import Any

from arq.connections import ArqRedis
from arq.worker import Function, Worker

from workers.queue.claiming import ClaimingWorker


def burst_worker(
    redis: ArqRedis,
    queue: str,
    *functions: Function,
    cls: type[Worker] = ClaimingWorker,
    max_jobs: int = 7,
    **ctx: Any,
) -> Worker:
    """`cls` (Warden's claiming worker by default) running `functions` from `queue` until it is empty,
    polling fast, without signal handlers; `ctx` is given to the jobs beside `redis`."""
    return cls(
        functions=list(functions),
        queue_name=queue,
        redis_pool=redis,
        burst=True,
        handle_signals=False,
        poll_delay=0.001,
        max_jobs=max_jobs,
        ctx={"redis": redis, **ctx},
    )

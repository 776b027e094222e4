"""The worker benchmark's baselines: ARQ's own `Worker`, and Warden's `ClaimingWorker` (ARQ with the
claim step in one round trip), running jobs that do nothing, with Warden's worker settings (max_jobs,
poll delay) on the same Redis. `python -m tests.bench.arq_noop URL N` queues N jobs (through Warden's
one-round-trip enqueue) for each, drains them in burst mode and prints both rates in jobs/s."""

from __future__ import annotations

import asyncio
import sys
import time
from typing import Any

from arq.connections import ArqRedis
from arq.worker import Worker, func

from tests.support.settings import make_settings
from workers.jobs.runtime.worker import worker_settings
from workers.queue.claiming import ClaimingWorker
from workers.queue.enqueue import Enqueuer

QUEUE = "bench:noop"


async def noop(ctx: dict[str, Any], *args: Any) -> None:
    return None


async def run(redis_url: str, jobs: int, worker_class: type[Worker]) -> float:
    redis = ArqRedis.from_url(redis_url)
    await redis.delete(QUEUE)
    enqueuer = Enqueuer(redis, QUEUE)
    for i in range(jobs):
        await enqueuer.enqueue("noop", f"noop-{i}-{time.time()}", {"id": i}, 1.0)
    ours = worker_settings(make_settings())
    worker = worker_class(
        functions=[func(noop, name="noop")],
        queue_name=QUEUE,
        redis_pool=redis,
        burst=True,
        handle_signals=False,
        max_jobs=ours["max_jobs"],
        poll_delay=ours["poll_delay"],
        job_timeout=ours["job_timeout"],
    )
    started = time.perf_counter()
    await worker.async_run()
    elapsed = time.perf_counter() - started
    await worker.close()
    return jobs / elapsed


if __name__ == "__main__":
    url, jobs = sys.argv[1], int(sys.argv[2])
    print(" ".join(f"{asyncio.run(run(url, jobs, cls)):.1f}" for cls in (Worker, ClaimingWorker)))

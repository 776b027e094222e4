"""Deadline jobs left to the job that leads a burst (`ClaimingWorker`'s `left_to_leads`, issue 30), on a
real Redis: while a job of the worker leads, a poll passes over the deadline jobs due at their first try
(the lead takes them a batch at a time) and claims the rest; otherwise it claims only a few of them, so
that a burst's first poll starts jobs that lead, not a job for every room."""

from __future__ import annotations

import asyncio
from typing import Any

from arq.connections import ArqRedis
from arq.worker import func

from workers.queue.claiming import ClaimingWorker
from workers.queue.enqueue import Enqueuer
from workers.queue.jobs import deadline_job_id, queue_deadline

QUEUE = "warden:test-left-to-leads"
ROOMS = [f"RM_{i}" for i in range(6)]


async def record(ctx: dict[str, Any], *args: Any) -> str:
    await ctx["redis"].rpush("ran", ctx["job_id"])
    return "done"


async def test_a_poll_leaves_first_tries_of_deadline_jobs_to_the_lead(redis_url: str) -> None:
    redis = ArqRedis.from_url(redis_url)
    leads = [True]
    try:
        await redis.delete(QUEUE, "ran")
        enqueuer = Enqueuer(redis, QUEUE)
        for sid in ROOMS:
            assert await queue_deadline(enqueuer, sid, 1)
        assert await queue_deadline(enqueuer, "RM_tried", 1, tried=1)  # a retry: claimed as any job
        assert await enqueuer.enqueue("apply_webhook", "webhook:EV_1", {})
        worker = ClaimingWorker(
            functions=[func(record, name="on_deadline"), func(record, name="apply_webhook")],
            queue_name=QUEUE,
            redis_pool=redis,
            burst=True,
            handle_signals=False,
            ctx={"redis": redis},
            left_to_leads=("deadline:", 2, lambda: leads[0]),
        )

        async def poll() -> set[str]:
            await worker.start_jobs(await redis.zrange(QUEUE, 0, -1))
            started = set(worker.tasks)
            await asyncio.gather(*worker.tasks.values())
            worker.tasks.clear()
            return started

        assert await poll() == {deadline_job_id("RM_tried", 1), "webhook:EV_1"}  # a job leads
        queued = {m.decode() for m in await redis.zrange(QUEUE, 0, -1)}
        assert queued == {deadline_job_id(sid, 1) for sid in ROOMS}  # left for the lead's `hold_due`
        assert await enqueuer.hold_due("deadline:", 10, 30) == [deadline_job_id(s, 1) for s in ROOMS]
        await enqueuer.release([deadline_job_id(s, 1) for s in ROOMS])
        for sid in ROOMS:  # given back by the lead, say
            assert await queue_deadline(enqueuer, sid, 1)
        leads[0] = False
        assert await poll() == {deadline_job_id(s, 1) for s in ROOMS[:2]}  # none leads: two a poll
        assert await poll() == {deadline_job_id(s, 1) for s in ROOMS[2:4]}
        ran = [r.decode() for r in await redis.lrange("ran", 0, -1)]
        claimed = [deadline_job_id(s, 1) for s in ["RM_tried", *ROOMS[:4]]] + ["webhook:EV_1"]
        assert sorted(ran) == sorted(claimed)  # each once
    finally:
        await redis.aclose()

"""Holding a job id without queueing it (`Enqueuer.hold`, issue 30's recovery in bulk), on a real Redis:
while held, the id is refused as a queued or running job's is; a job queued or running is not held; a
release gives up only its own hold, never a real job queued under the id after the hold ran out."""

from __future__ import annotations

from arq.connections import ArqRedis
from arq.constants import job_key_prefix

from workers.queue.enqueue import Enqueuer
from workers.queue.jobs import ON_DEADLINE, deadline_job_id, queue_deadline

QUEUE = "warden:test-hold"


async def test_a_held_id_is_refused_then_free_once_released(redis_url: str) -> None:
    redis = ArqRedis.from_url(redis_url)
    try:
        enqueuer = Enqueuer(redis, QUEUE)
        held = deadline_job_id("RM_1", 4)
        assert await enqueuer.hold(ON_DEADLINE, [(held, ("RM_1", 4))], 30) == [True]
        assert await queue_deadline(enqueuer, "RM_1", 4) is False  # the sweep's, or a notice's
        assert await redis.zcard(QUEUE) == 0  # held, not queued: no worker runs it
        await enqueuer.release([held])
        assert await queue_deadline(enqueuer, "RM_1", 4) is True
        assert await enqueuer.hold(ON_DEADLINE, [(held, ("RM_1", 4))], 30) == [False]  # now a job's
    finally:
        await redis.aclose()


async def test_a_release_after_the_hold_ran_out_leaves_the_real_job_alone(redis_url: str) -> None:
    redis = ArqRedis.from_url(redis_url)
    try:
        enqueuer = Enqueuer(redis, QUEUE)
        held = deadline_job_id("RM_2", 7)
        assert await enqueuer.hold(ON_DEADLINE, [(held, ("RM_2", 7))], 30) == [True]
        assert 0 < await redis.pttl(job_key_prefix + held) <= 30_000  # it runs out by itself
        await redis.delete(job_key_prefix + held)  # as it does when it runs out (its batch's worker died)
        assert await queue_deadline(enqueuer, "RM_2", 7) is True  # the sweep queues the deadline
        await enqueuer.release([held])  # a late release of the old hold
        assert await redis.exists(job_key_prefix + held) == 1  # the queued job is still there
        assert await queue_deadline(enqueuer, "RM_2", 7) is False
    finally:
        await redis.aclose()

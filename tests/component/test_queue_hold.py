"""Holding a job id without queueing it (`Enqueuer.hold`, issue 30's recovery in bulk), on a real Redis:
while held, the id is refused as a queued or running job's is; a job queued or running is not held; a
release gives up only its own hold, never a real job queued under the id after the hold ran out. Due
deadline jobs taken out of the queue and held instead (`Enqueuer.hold_due`, a burst of deadlines)."""

from __future__ import annotations

import time

from arq.connections import ArqRedis
from arq.constants import in_progress_key_prefix, job_key_prefix, retry_key_prefix

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


async def test_due_deadline_jobs_are_taken_out_of_the_queue_and_held(redis_url: str) -> None:
    """`hold_due` (a deadline burst): the due deadline jobs no worker runs and that never ran leave the
    queue and are held instead; not one due later, running, being retried, or of another kind."""
    redis = ArqRedis.from_url(redis_url)
    try:
        await redis.delete(QUEUE)
        enqueuer = Enqueuer(redis, QUEUE)
        for sid in ("RM_a", "RM_b", "RM_c", "RM_d", "RM_e"):
            assert await queue_deadline(enqueuer, sid, 1)
        assert await queue_deadline(enqueuer, "RM_later", 1, time.time() + 60)
        assert await enqueuer.enqueue("apply_webhook", "webhook:EV_1", {})
        await redis.set(in_progress_key_prefix + deadline_job_id("RM_d", 1), b"1")  # a worker runs it
        await redis.set(retry_key_prefix + deadline_job_id("RM_e", 1), b"2")  # it ran: ARQ's retry
        taken = await enqueuer.hold_due("deadline:", 2, 30)
        assert taken == [deadline_job_id("RM_a", 1), deadline_job_id("RM_b", 1)]  # two at most, in order
        assert await enqueuer.hold_due("deadline:", 10, 30) == [deadline_job_id("RM_c", 1)]
        queued = {member.decode() for member in await redis.zrange(QUEUE, 0, -1)}
        assert queued == {f"deadline:{s}:1" for s in ("RM_d", "RM_e", "RM_later")} | {"webhook:EV_1"}
        assert await queue_deadline(enqueuer, "RM_a", 1) is False  # held: the sweep's is refused
        assert 0 < await redis.pttl(job_key_prefix + deadline_job_id("RM_a", 1)) <= 30_000  # runs out
        await enqueuer.release(taken)
        assert await queue_deadline(enqueuer, "RM_a", 1) is True  # given back to run by itself
    finally:
        await redis.aclose()

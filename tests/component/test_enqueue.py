"""The web's enqueue (`workers.queue.enqueue.Enqueuer`) under concurrency: calls made together share a round
trip, and each caller still gets its own answer — queued, already known, or the error."""

from __future__ import annotations

import asyncio

import pytest
from arq.connections import ArqRedis
from arq.jobs import Job, JobStatus
from redis.exceptions import ConnectionError as RedisConnectionError

from workers.queue.enqueue import Enqueuer

QUEUE = "warden:test-enqueue"


async def test_concurrent_calls_each_get_their_own_answer(redis_url: str) -> None:
    redis = ArqRedis.from_url(redis_url)
    try:
        enqueuer = Enqueuer(redis, QUEUE)
        assert await enqueuer.enqueue("apply_webhook", "EV_early", {}, 1.0) is True
        ids = [f"EV_{i}" for i in range(60)] + ["EV_3", "EV_early", "EV_7"]  # three already known
        answers = await asyncio.gather(*(enqueuer.enqueue("apply_webhook", i, {"id": i}, 1.0) for i in ids))
        assert answers == [True] * 60 + [False] * 3
        assert await redis.zcard(QUEUE) == 61
        job = await Job("EV_42", redis, _queue_name=QUEUE).info()
        assert job is not None and job.args == ({"id": "EV_42"}, 1.0)
        assert await Job("EV_42", redis, _queue_name=QUEUE).status() == JobStatus.queued
    finally:
        await redis.aclose()


async def test_a_redis_that_forgot_the_script_still_gets_every_job(redis_url: str) -> None:
    redis = ArqRedis.from_url(redis_url)
    try:
        enqueuer = Enqueuer(redis, QUEUE)
        await redis.script_flush()  # as after a Redis restart
        answers = await asyncio.gather(
            *(enqueuer.enqueue("apply_webhook", f"EV_f{i}", {}, 1.0) for i in range(20))
        )
        assert answers == [True] * 20 and await redis.zcard(QUEUE) == 20
    finally:
        await redis.aclose()


async def test_unreachable_redis_fails_every_caller() -> None:
    redis = ArqRedis.from_url("redis://127.0.0.1:9/0", socket_connect_timeout=1)
    try:
        enqueuer = Enqueuer(redis, QUEUE)
        results = await asyncio.gather(
            *(enqueuer.enqueue("apply_webhook", f"EV_x{i}", {}, 1.0) for i in range(10)),
            return_exceptions=True,
        )
        assert all(isinstance(r, RedisConnectionError | OSError) for r in results), results
        with pytest.raises((RedisConnectionError, OSError)):
            await enqueuer.enqueue("apply_webhook", "EV_alone", {}, 1.0)
    finally:
        await redis.aclose()

"""The web's enqueue (`workers.queue.enqueue.Enqueuer`) under concurrency: calls made together share a round
trip, and each caller still gets its own answer — queued, already known, or the error."""

from __future__ import annotations

import asyncio
import itertools
import time

import pytest
from arq.connections import ArqRedis
from arq.jobs import Job, JobStatus
from redis.exceptions import ConnectionError as RedisConnectionError

from workers.queue.enqueue import ROOM_SCORE_PREFIX, Enqueuer
from workers.queue.jobs import queue_webhook, webhook_job_id

QUEUE = "warden:test-enqueue"
# A room's storm spaced in queue time (`WARDEN_ROOM_EVENTS_PER_SECOND`), each on a queue of its own.
FAST, SLOW = f"{QUEUE}:fast", f"{QUEUE}:slow"


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


async def queued_storm(redis: ArqRedis, queue: str, room: str, size: int, spacing_ms: float) -> None:
    """`size` webhooks of `room` queued at once on `queue` (emptied first), spaced `spacing_ms` apart."""
    await redis.delete(queue, ROOM_SCORE_PREFIX + room)
    enqueuer = Enqueuer(redis, queue, room_spacing_ms=spacing_ms)
    storm = [{"id": f"EV_{i}", "room_sid": room, "room_name": room} for i in range(size)]
    await asyncio.gather(*(queue_webhook(enqueuer, e["id"], e, 1.0) for e in storm))


async def test_a_storm_is_spaced_at_a_pace_above_a_thousand_a_second(redis_url: str) -> None:
    """`WARDEN_ROOM_EVENTS_PER_SECOND=2000` (half a millisecond apart): 1,000 webhooks of one room queued
    at once are spread over half a second of queue time, in order, as the setting says; not all due in
    the same millisecond (the spacing lost to whole milliseconds)."""
    redis = ArqRedis.from_url(redis_url)
    try:
        began = time.time() * 1000
        await queued_storm(redis, FAST, "RM_fast", 1000, 0.5)
        took = time.time() * 1000 - began
        queued = [(m.decode(), s) for m, s in await redis.zrange(FAST, 0, -1, withscores=True)]
    finally:
        await redis.aclose()
    scores = [s for _, s in queued]
    # A webhook is due at its room's pace after the one before, or when it came if that is later: the
    # storm spans its 1,000 paces, plus at most the time it took to queue (a loaded machine's lag).
    assert 490 <= scores[-1] - scores[0] <= 510 + took, (scores[-1] - scores[0], took)
    # In order of arrival, each due no sooner than the one before (two may share a millisecond, and the
    # queue lists those by name: ARQ scores whole milliseconds).
    due = dict(queued)
    in_order = [due[webhook_job_id(f"EV_{i}")] for i in range(1000)]
    assert all(a <= b for a, b in itertools.pairwise(in_order)) and len(due) == 1000


async def test_a_storm_spread_over_more_than_a_minute_keeps_its_rooms_next_webhook_behind_it(
    redis_url: str,
) -> None:
    """`WARDEN_ROOM_EVENTS_PER_SECOND=10`: 700 webhooks of one room are spread over 70 s of queue time.
    The room's pace is remembered until the storm's tail is due (a minute past it), so the room's next
    webhook, whenever within that time it comes, is queued after the tail, not at its own time among it."""
    redis = ArqRedis.from_url(redis_url)
    try:
        await queued_storm(redis, SLOW, "RM_slow", 700, 100.0)
        tail = await redis.zscore(SLOW, webhook_job_id("EV_699"))
        remembered = await redis.pttl(ROOM_SCORE_PREFIX + "RM_slow")
        now = time.time() * 1000
    finally:
        await redis.aclose()
    assert tail is not None and tail - now > 65_000
    assert now + remembered >= tail + 59_000, (tail - now, remembered)

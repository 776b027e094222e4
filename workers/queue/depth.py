"""How full ARQ's queue is, read from its sorted set (job ids scored by the time they are due, in ms):
the figures `service.metrics` serves."""

from __future__ import annotations

import time
from dataclasses import dataclass

from redis.asyncio import Redis

from workers.queue.enqueue import PRIORITY_MS


@dataclass(frozen=True)
class Depth:
    """`ready`: jobs due now; `deferred`: jobs due later (SLA timers, retries); `lag_seconds`: how
    long the oldest due job has waited for a worker (0 when none is due)."""

    ready: int
    deferred: int
    lag_seconds: float


async def queue_depth(redis: Redis, queue_name: str) -> Depth:
    """Read the queue's depth now, by the real clock (as ARQ scores jobs). Priority jobs (scored
    `PRIORITY_MS` before their time, `workers.queue.enqueue`) are counted by the time they are due."""
    now_ms = time.time() * 1000
    bands: list[tuple[float | str, float, int]] = [
        ("-inf", now_ms - PRIORITY_MS, PRIORITY_MS),
        (PRIORITY_MS, now_ms, 0),
    ]
    async with redis.pipeline(transaction=False) as pipe:
        for low, high, _ in bands:
            pipe.zrangebyscore(queue_name, low, high, start=0, num=1, withscores=True)
            pipe.zcount(queue_name, low, high)
        pipe.zcard(queue_name)
        replies = await pipe.execute()
    waited = [
        (now_ms - (oldest[0][1] + shift)) / 1000
        for (_, _, shift), oldest in zip(bands, replies[0:4:2], strict=True)
        if oldest
    ]
    ready = replies[1] + replies[3]
    return Depth(ready, replies[4] - ready, max([0.0, *waited]))

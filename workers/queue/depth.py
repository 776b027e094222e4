"""How full ARQ's queue is, read from its sorted set (job ids scored by the time they are due, in ms):
the figures `service.metrics` serves."""

from __future__ import annotations

import time
from dataclasses import dataclass

from redis.asyncio import Redis


@dataclass(frozen=True)
class Depth:
    """`ready`: jobs due now; `deferred`: jobs due later (SLA timers, retries); `lag_seconds`: how
    long the oldest due job has waited for a worker (0 when none is due)."""

    ready: int
    deferred: int
    lag_seconds: float


async def queue_depth(redis: Redis, queue_name: str) -> Depth:
    """Read the queue's depth now, by the real clock (as ARQ scores jobs)."""
    now_ms = time.time() * 1000
    oldest = await redis.zrangebyscore(queue_name, "-inf", now_ms, start=0, num=1, withscores=True)
    ready = await redis.zcount(queue_name, "-inf", now_ms)
    deferred = await redis.zcard(queue_name) - ready
    return Depth(ready, deferred, max(0.0, (now_ms - oldest[0][1]) / 1000) if oldest else 0.0)

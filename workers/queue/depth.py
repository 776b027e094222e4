"""How full ARQ's queue is, read from its sorted set (job ids scored by the time they are due, in ms):
the figures `service.metrics` serves.

A job stays in the sorted set while it runs (ARQ removes it when it finishes), with its in-progress key
set. The lag is therefore that of the oldest due job *without* an in-progress key: the time a job has
waited for a worker, not the time a worker has spent on it (a prune or sweep of a second or two is not
lag), nor the time before a deferred job (an SLA timer, a retry) is due.
"""

from __future__ import annotations

from dataclasses import dataclass

from arq.constants import in_progress_key_prefix
from arq.utils import timestamp_ms
from redis.asyncio import Redis

from workers.queue.enqueue import PRIORITY_MS

PAGE = 100  # due jobs looked at per round trip while looking for the oldest one not running


@dataclass(frozen=True)
class Depth:
    """`ready`: jobs due now (waiting or running); `deferred`: jobs due later (SLA timers, retries);
    `lag_seconds`: how long the oldest due job no worker runs yet has waited (0 when none waits)."""

    ready: int
    deferred: int
    lag_seconds: float


async def _oldest_waiting(redis: Redis, queue_name: str, low: float | str, high: float) -> float | None:
    """The score of the oldest job scored from `low` to `high` that no worker runs, or None."""
    offset = 0
    while True:
        due = await redis.zrangebyscore(queue_name, low, high, start=offset, num=PAGE, withscores=True)
        if not due:
            return None
        async with redis.pipeline(transaction=False) as pipe:
            for job_id, _ in due:
                pipe.exists(in_progress_key_prefix + job_id.decode())
            running = await pipe.execute()
        for (_, score), busy in zip(due, running, strict=True):
            if not busy:
                return float(score)
        offset += PAGE


async def queue_depth(redis: Redis, queue_name: str) -> Depth:
    """Read the queue's depth now, by the real clock (as ARQ scores jobs). Priority jobs (scored
    `PRIORITY_MS` before their time, `workers.queue.enqueue`) are counted by the time they are due."""
    # ARQ scores a job with `timestamp_ms()`, its time rounded to the millisecond: read "now" the same
    # way, or a job enqueued less than half a millisecond ago is scored after "now" and counted deferred.
    now_ms = timestamp_ms()
    waited, ready = [], 0
    for low, high, shift in (("-inf", now_ms - PRIORITY_MS, PRIORITY_MS), (PRIORITY_MS, now_ms, 0)):
        ready += await redis.zcount(queue_name, low, high)
        oldest = await _oldest_waiting(redis, queue_name, low, high)
        if oldest is not None:
            waited.append((now_ms - (oldest + shift)) / 1000)
    deferred = await redis.zcard(queue_name) - ready
    return Depth(ready, deferred, max([0.0, *waited]))

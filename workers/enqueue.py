"""Enqueue a job for ARQ in one round trip: the same keys, the same serialized job and the same
dedupe as `ArqRedis.enqueue_job`, but one server-side script instead of WATCH / EXISTS / MULTI /
PSETEX / ZADD / EXEC (three round trips, the largest cost of the webhook endpoint).

The script refuses the job, as ARQ does, when its job key or its result key exists: LiveKit's retries
of one event are one job for as long as ARQ keeps the result. A deferred job (`defer_until`, as ARQ's
`_defer_until`) is scored at that time and its key lives until then plus ARQ's usual margin.
"""

from __future__ import annotations

from typing import Any

from arq.connections import ArqRedis
from arq.constants import default_queue_name, job_key_prefix, result_key_prefix
from arq.jobs import serialize_job
from arq.utils import timestamp_ms

ENQUEUE = """
if redis.call('EXISTS', KEYS[1], KEYS[2]) > 0 then
  return 0
end
redis.call('PSETEX', KEYS[1], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[3], ARGV[3], ARGV[4])
return 1
"""


class Enqueuer:
    """`enqueue(function, job_id, *args)`: True when queued, False when that job id is already known."""

    def __init__(self, redis: ArqRedis, queue_name: str = default_queue_name) -> None:
        self._redis, self._queue_name = redis, queue_name
        self._script = redis.register_script(ENQUEUE)

    async def enqueue(self, function: str, job_id: str, *args: Any, defer_until: float | None = None) -> bool:
        """Queue `function(*args)` as job `job_id`, to run now or at `defer_until` (epoch seconds)."""
        now = timestamp_ms()
        score = max(now, round(defer_until * 1000)) if defer_until is not None else now
        job = serialize_job(function, args, {}, None, now, serializer=self._redis.job_serializer)
        keys = [job_key_prefix + job_id, result_key_prefix + job_id, self._queue_name]
        expires = score - now + self._redis.expires_extra_ms
        queued = await self._script(keys=keys, args=[expires, job, score, job_id])
        return bool(queued)

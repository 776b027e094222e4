"""Enqueue jobs for ARQ in one round trip: the same keys, the same serialized job and the same
dedupe as `ArqRedis.enqueue_job`, but one server-side script instead of WATCH / EXISTS / MULTI /
PSETEX / ZADD / EXEC (three round trips, the largest cost of the webhook endpoint).

The script refuses a job, as ARQ does, when its job key or its result key exists: LiveKit's retries
of one event are one job for as long as ARQ keeps the result. A deferred job (`defer_until`, as ARQ's
`_defer_until`) is scored at that time and its key lives until then plus ARQ's usual margin.
`tests/component/test_queue_contract.py` compares what it writes with `ArqRedis.enqueue_job`, key by key.

A job queued with `priority` (escalation's: an outage's restart must not wait behind a backlog of room
jobs) is scored `PRIORITY_MS` before its time: ARQ's workers poll due jobs in score order, so it is
taken before any room job. Every score below `PRIORITY_MS` (a time before 2001) is such a job, and
`due_ms` gives its time back (for the queue's lag, and to ARQ's `run_job`, see `workers.queue.claiming`).

A room's jobs (`room`: a webhook's room) are spaced in score: each is scored no earlier than
`room_spacing_ms` after the room's previous one (`warden:room-score:{room}`, kept until a minute past
the room's last job's time), so that a room's storm (5,000 joins in one second) is scored over seconds,
and another room's event queued in the middle of it is due before the storm's tail: one room never
holds the queue. A room of ordinary pace
(under one event per `room_spacing_ms`) is scored at its time, as before. 0 turns the spacing off.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Sequence
from typing import Any, Protocol

from arq.connections import ArqRedis
from arq.constants import (
    default_queue_name,
    in_progress_key_prefix,
    job_key_prefix,
    result_key_prefix,
    retry_key_prefix,
)
from arq.jobs import serialize_job
from arq.utils import timestamp_ms

PRIORITY_MS = 10**12  # ~31.7 years: a priority job's score, before its time; real times are all above


def due_ms(score: float) -> float:
    """When a job of this score is due (ms): a priority job's score is `PRIORITY_MS` before that."""
    return score + PRIORITY_MS if score < PRIORITY_MS else score


ROOM_SCORE_PREFIX = "warden:room-score:"
ROOM_SCORE_KEEP_MS = 60_000

# Several jobs of one queue in one call, in order, so that an id repeated in one call is refused the
# second time. KEYS: the queue, then each job's job key and result key. ARGV, six values a job: the
# job key's time to live (ms), the serialized job, its score (ms), its id, its room's score key ("":
# none) and the room's spacing (ms). Returns 1 (queued) or 0 (refused) per job.
ENQUEUE = """
local queued = {}
for i = 1, (#KEYS - 1) / 2 do
  local a = 6 * (i - 1)
  if redis.call('EXISTS', KEYS[2 * i], KEYS[2 * i + 1]) > 0 then
    queued[i] = 0
  else
    local score = tonumber(ARGV[a + 3])
    if ARGV[a + 5] ~= '' then
      local last = tonumber(redis.call('GET', ARGV[a + 5]) or '0')
      score = math.max(score, last + tonumber(ARGV[a + 6]))
      -- kept to the microsecond (a spacing under a millisecond must add up, not round away), and until
      -- a minute past this job's time: a storm spread further ahead than that keeps the room's next
      -- job behind its tail
      local keep = math.floor(score - tonumber(ARGV[a + 3])) + KEEP_MS
      redis.call('SET', ARGV[a + 5], string.format('%.3f', score), 'PX', string.format('%d', keep))
    end
    redis.call('PSETEX', KEYS[2 * i], ARGV[a + 1], ARGV[a + 2])
    redis.call('ZADD', KEYS[1], string.format('%d', score), ARGV[a + 4])
    queued[i] = 1
  end
end
return queued
""".replace("KEEP_MS", str(ROOM_SCORE_KEEP_MS))

# Hold job ids without queueing them (`Enqueuer.hold`). KEYS: each job's job key and result key; ARGV:
# the time to live (ms), then each job's serialized job. A held id is refused by `ENQUEUE` as a job
# queued or running is. Returns 1 (held) or 0 (a job of that id is known) per job.
HOLD = """
local held = {}
for i = 1, #KEYS / 2 do
  if redis.call('EXISTS', KEYS[2 * i - 1], KEYS[2 * i]) > 0 then
    held[i] = 0
  else
    redis.call('PSETEX', KEYS[2 * i - 1], ARGV[1], ARGV[i + 1])
    held[i] = 1
  end
end
return held
"""
# Release held ids: each job key is deleted only if it still holds what `HOLD` wrote (once a hold ran
# out, the id may be a real job's again, which must stay). KEYS: job keys; ARGV: what was written.
RELEASE = """
local n = 0
for i = 1, #KEYS do
  if redis.call('GET', KEYS[i]) == ARGV[i] then
    redis.call('DEL', KEYS[i])
    n = n + 1
  end
end
return n
"""


# Take due jobs out of the queue and hold their ids instead (`Enqueuer.hold_due`). KEYS: the queue;
# ARGV: now (ms), the lowest score that is no priority job's (`PRIORITY_MS`), the ids' prefix, how many at
# most, the hold's time to live (ms), the prefixes of ARQ's job, in-progress and retry keys. A job is
# taken only if no worker runs it and it never ran (a retry's back-off is left to ARQ): it leaves the
# queue, and its job key, kept as it was, lives the hold's time. At most 2,000 due jobs are looked at
# (a backlog of other jobs is not read through). Returns each id taken and its job key.
HOLD_DUE = """
local taken, offset, looked = {}, 0, 0
while #taken < 2 * tonumber(ARGV[4]) and looked < 2000 do
  local due = redis.call('ZRANGEBYSCORE', KEYS[1], ARGV[2], ARGV[1], 'LIMIT', offset, 200)
  if #due == 0 then break end
  offset, looked = offset + #due, looked + #due
  for _, job_id in ipairs(due) do
    if #taken < 2 * tonumber(ARGV[4]) and string.sub(job_id, 1, #ARGV[3]) == ARGV[3]
        and redis.call('EXISTS', ARGV[7] .. job_id, ARGV[8] .. job_id) == 0 then
      local job = redis.call('GET', ARGV[6] .. job_id)
      if job then
        redis.call('ZREM', KEYS[1], job_id)
        redis.call('PEXPIRE', ARGV[6] .. job_id, ARGV[5])
        taken[#taken + 1] = job_id
        taken[#taken + 1] = job
        offset = offset - 1
      end
    end
  end
end
return taken
"""


class JobQueue(Protocol):
    """What queues Warden's jobs: `Enqueuer` on ARQ's Redis (the jobs tier of the tests has one in memory)."""

    async def enqueue(
        self,
        function: str,
        job_id: str,
        *args: Any,
        defer_until: float | None = None,
        priority: bool = False,
        room: str = "",
    ) -> bool:
        """Queue `function(*args)` as job `job_id` (now, or at `defer_until`, epoch seconds; with
        `priority`, before every job that is not; `room`: spaced among that room's jobs, see the
        module's doc); False when that job id is already known."""
        ...

    async def hold(
        self, function: str, jobs: Sequence[tuple[str, tuple[Any, ...]]], seconds: float
    ) -> list[bool]:
        """Hold each job id of `jobs` ((id, args) of `function`'s jobs) for `seconds` at most, without
        queueing it: while held, `enqueue` refuses it as it refuses a job queued or running, so that
        work done outside the queue (`workers.jobs.rooms.batch`) is single-flight with the job of that
        id. False for an id already known (its job is queued or running: the work is its)."""
        ...

    async def hold_due(self, prefix: str, limit: int, seconds: float) -> list[str]:
        """Take up to `limit` jobs due now whose ids start with `prefix` out of the queue, each held
        instead (as `hold` does) for `seconds` at most: jobs no worker runs and that never ran, in the
        queue's order. Their ids; the work is the caller's, who `release`s each and queues again what it
        leaves undone."""
        ...

    async def release(self, job_ids: Sequence[str]) -> None:
        """Give up the holds on `job_ids` (one that ran out is left as it is)."""
        ...


class Enqueuer:
    """`enqueue(function, job_id, *args)`: True when queued, False when that job id is already known.

    Calls made while a round trip is under way are sent together in the next one, so under load many
    webhooks share one command to Redis; alone, a call is sent at once. Each caller still learns its
    own job's fate, or the error that stopped them all. Warden's jobs are queued through
    `workers.queue.jobs`, which knows their names, ids and arguments."""

    def __init__(
        self, redis: ArqRedis, queue_name: str = default_queue_name, *, room_spacing_ms: float = 0.0
    ) -> None:
        self._redis, self._queue_name, self._spacing = redis, queue_name, room_spacing_ms
        self._script = redis.register_script(ENQUEUE)
        self._hold, self._release = redis.register_script(HOLD), redis.register_script(RELEASE)
        self._hold_due = redis.register_script(HOLD_DUE)
        self._held: dict[str, bytes] = {}  # held job id -> what its job key holds
        self._waiting: list[tuple[list[Any], asyncio.Future[bool]]] = []
        self._sender: asyncio.Task[None] | None = None

    async def enqueue(
        self,
        function: str,
        job_id: str,
        *args: Any,
        defer_until: float | None = None,
        priority: bool = False,
        room: str = "",
    ) -> bool:
        """Queue `function(*args)` as job `job_id`, to run now or at `defer_until` (epoch seconds);
        with `priority`, before every job that is not; `room`: spaced among that room's jobs (see
        the module's doc)."""
        now = timestamp_ms()
        due = max(now, round(defer_until * 1000)) if defer_until is not None else now
        job = serialize_job(function, args, {}, None, now, serializer=self._redis.job_serializer)
        expires = due - now + self._redis.expires_extra_ms
        score = due - PRIORITY_MS if priority else due
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        spaced = ROOM_SCORE_PREFIX + room if room and self._spacing > 0 and not priority else ""
        call = [job_key_prefix + job_id, result_key_prefix + job_id, expires, job, score, job_id]
        self._waiting.append(([*call, spaced, self._spacing], future))
        if self._sender is None or self._sender.done():
            self._sender = asyncio.create_task(self._send())
        return await future

    async def hold(
        self, function: str, jobs: Sequence[tuple[str, tuple[Any, ...]]], seconds: float
    ) -> list[bool]:
        if not jobs:
            return []
        now, serializer = timestamp_ms(), self._redis.job_serializer
        # the job each hold stands for, marked as a hold's own (never queued, so never run): a job queued
        # under the id once the hold ran out differs from it, even within the same millisecond
        mark = {"held": secrets.token_hex(8)}
        values = [serialize_job(function, args, mark, None, now, serializer=serializer) for _, args in jobs]
        keys = [key for job_id, _ in jobs for key in (job_key_prefix + job_id, result_key_prefix + job_id)]
        replies = await self._hold(keys=keys, args=[round(seconds * 1000), *values])
        for (job_id, _), value, reply in zip(jobs, values, replies, strict=True):
            if reply:
                self._held[job_id] = value
        return [bool(reply) for reply in replies]

    async def hold_due(self, prefix: str, limit: int, seconds: float) -> list[str]:
        prefixes = [job_key_prefix, in_progress_key_prefix, retry_key_prefix]
        args: list[str | int] = [timestamp_ms(), PRIORITY_MS, prefix, limit, round(seconds * 1000), *prefixes]
        reply = iter(await self._hold_due(keys=[self._queue_name], args=args))
        taken = [(job_id.decode(), job) for job_id, job in zip(reply, reply, strict=True)]
        self._held.update(taken)
        return [job_id for job_id, _ in taken]

    async def release(self, job_ids: Sequence[str]) -> None:
        mine = [(job_id, self._held.pop(job_id)) for job_id in job_ids if job_id in self._held]
        if mine:
            keys = [job_key_prefix + job_id for job_id, _ in mine]
            await self._release(keys=keys, args=[value for _, value in mine])

    async def _send(self) -> None:
        while self._waiting:
            batch, self._waiting = self._waiting, []
            try:
                replies = await self._round_trip([call for call, _ in batch])
            except Exception as exc:  # Redis unreachable: every caller of this batch hears it
                replies = [exc] * len(batch)
            for (_, future), reply in zip(batch, replies, strict=True):
                if future.done():
                    continue
                if isinstance(reply, Exception):
                    future.set_exception(reply)
                else:
                    future.set_result(bool(reply))

    async def _round_trip(self, calls: list[list[Any]]) -> list[Any]:
        keys, args = [self._queue_name], []
        for job_key, result_key, *values in calls:
            keys += [job_key, result_key]
            args += values
        return list(
            await self._script(keys=keys, args=args)
        )  # redis-py reloads the script if Redis forgot it

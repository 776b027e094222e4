"""ARQ's `run_job` and `finish_job`, with a job's Redis work shared with the other jobs of the moment.

ARQ's worker makes two transactions of its own for each job: `run_job` reads the job and counts its
try (MULTI / GET / INCR / EXPIRE / EXEC), `finish_job` writes its end (its result, its keys deleted, its
place in the queue given up or moved for a retry). Each is cheap for Redis and dear in Python (redis-py
builds, sends and parses every command of it): together they were a quarter of a busy worker's CPU.
Here the reads are made by the script that claims the polled jobs (`workers.queue.claiming`: one round
trip for all of them), and the writes of the jobs that end while a round trip is under way are sent
together in the next one, one script, each job's writes atomic as ARQ's transaction made them.

Everything else is ARQ's 0.28 `run_job`, kept as it was: the job's try and `max_tries`, its timeout, a
`Retry`'s new score, a cancelled job run again, a result kept for `keep_result` (none where it is 0), an
expired or unreadable job or an unknown function failed, a cron's claim kept for a minute, abort,
`on_job_start` / `on_job_end` / `after_job_end`, the counters and ARQ's log lines (logger `arq.worker`).
The keys and what is written in them are ARQ's, so ARQ's own worker and Warden's share a queue
(`tests/component/test_queue_contract.py`); `tests/unit/test_arq_pin.py` lists what to re-check on an
upgrade of ARQ.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from arq.constants import (
    abort_jobs_ss,
    in_progress_key_prefix,
    job_key_prefix,
    keep_cronjob_progress,
    result_key_prefix,
    retry_key_prefix,
)
from arq.jobs import SerializationError, deserialize_job_raw, serialize_result
from arq.utils import args_to_string, get_tz, timestamp_ms, to_ms, truncate
from arq.worker import JobExecutionFailed, Retry, RetryJob, Worker
from redis.commands.core import AsyncScript

log = logging.getLogger("arq.worker")  # ARQ's own lines, under ARQ's logger
RETRY_KEY_SECONDS = 88400  # how long ARQ keeps a job's try count

# The ends of several jobs. KEYS: the queue, ARQ's abort set, then four keys a job: in-progress, retry,
# job, result. ARGV, five values a job: its id; how long its in-progress key stays (ms; '' deletes it);
# 'finish', 'retry' or ''; its result ('' none); the result's time to live (ms, '' for ever), or for a
# retry the score to add ('' none).
FINISH = """
for i = 0, (#KEYS - 2) / 4 - 1 do
  local k, a = 3 + 4 * i, 5 * i
  local job_id, keep, how = ARGV[a + 1], ARGV[a + 2], ARGV[a + 3]
  local deleted = {}
  if keep == '' then deleted[#deleted + 1] = KEYS[k] else redis.call('PEXPIRE', KEYS[k], keep) end
  if how == 'finish' then
    if ARGV[a + 4] ~= '' then
      if ARGV[a + 5] == '' then
        redis.call('SET', KEYS[k + 3], ARGV[a + 4])
      else
        redis.call('SET', KEYS[k + 3], ARGV[a + 4], 'PX', ARGV[a + 5])
      end
    end
    deleted[#deleted + 1] = KEYS[k + 1]
    deleted[#deleted + 1] = KEYS[k + 2]
    redis.call('ZREM', KEYS[2], job_id)
    redis.call('ZREM', KEYS[1], job_id)
  elseif how == 'retry' and ARGV[a + 5] ~= '' then
    redis.call('ZINCRBY', KEYS[1], ARGV[a + 5], job_id)
  end
  if #deleted > 0 then redis.call('DEL', unpack(deleted)) end
end
return 1
"""


@dataclass(frozen=True)
class Claimed:
    """A job claimed, with what ARQ's `run_job` reads first: its serialized job (b"" when it expired),
    its try (counted), whether it had been aborted."""

    job_id: str
    score: int  # when it was due (ms)
    value: bytes
    job_try: int
    aborted: bool


class BatchingWorker(Worker):
    """`arq.Worker` whose jobs' reads come with their claim and whose ends are written together (see
    the module's doc). `run_claimed` runs a job `workers.queue.claiming` claimed."""

    _finish: AsyncScript | None = None
    _ending: list[tuple[list[str], list[Any], asyncio.Future[None]]] | None = None
    _writer: asyncio.Task[None] | None = None
    _tz: Any = None

    async def run_claimed(self, job: Claimed) -> None:
        """Run a job claimed, as ARQ's `run_job` runs it once it has read it."""
        job_id, score, job_try = job.job_id, job.score, job.job_try
        start_ms = timestamp_ms()
        function_name, enqueue_time_ms = "<unknown>", 0
        args: tuple[Any, ...] = ()
        kwargs: dict[Any, Any] = {}

        async def job_failed(exc: BaseException) -> None:
            self.jobs_failed += 1
            result_data_ = serialize_result(
                function=function_name,
                args=args,
                kwargs=kwargs,
                job_try=job_try,
                enqueue_time_ms=enqueue_time_ms,
                success=False,
                result=exc,
                start_ms=start_ms,
                finished_ms=timestamp_ms(),
                ref=f"{job_id}:{function_name}",
                serializer=self.job_serializer,
                queue_name=self.queue_name,
                job_id=job_id,
            )
            await asyncio.shield(self.finish_failed_job(job_id, result_data_))

        if not job.value:
            log.warning("job %s expired", job_id)
            return await job_failed(JobExecutionFailed("job expired"))
        try:
            function_name, args, kwargs, enqueue_job_try, enqueue_time_ms = deserialize_job_raw(
                job.value, deserializer=self.job_deserializer
            )
        except SerializationError as e:
            log.exception("deserializing job %s failed", job_id)
            return await job_failed(e)
        if job.aborted:
            t = (timestamp_ms() - enqueue_time_ms) / 1000
            log.info("%6.2fs ⊘ %s:%s aborted before start", t, job_id, function_name)
            return await job_failed(asyncio.CancelledError())
        try:  # ARQ's lookup: `ClaimingWorker`'s functions answer a name they lack (`_OrUnknown`)
            function = self.functions[function_name]
        except KeyError:
            log.warning("job %s, function %r not found", job_id, function_name)
            return await job_failed(JobExecutionFailed(f"function {function_name!r} not found"))

        if hasattr(function, "next_run"):  # a cron job
            ref, keep_in_progress = function_name, keep_cronjob_progress
        else:
            ref, keep_in_progress = f"{job_id}:{function_name}", None
        if enqueue_job_try and enqueue_job_try > job_try:
            job_try = enqueue_job_try
            await self.pool.setex(retry_key_prefix + job_id, RETRY_KEY_SECONDS, str(job_try))
        max_tries = self.max_tries if function.max_tries is None else function.max_tries
        if job_try > max_tries:
            t = (timestamp_ms() - enqueue_time_ms) / 1000
            log.warning("%6.2fs ! %s max retries %d exceeded", t, ref, max_tries)
            self.jobs_failed += 1
            result_data = serialize_result(
                function_name,
                args,
                kwargs,
                job_try,
                enqueue_time_ms,
                False,
                JobExecutionFailed(f"max {max_tries} retries exceeded"),
                start_ms,
                timestamp_ms(),
                ref,
                self.queue_name,
                job_id=job_id,
                serializer=self.job_serializer,
            )
            return await asyncio.shield(self.finish_failed_job(job_id, result_data))

        result: Any = _NO_RESULT
        finish = False
        timeout_s = self.job_timeout_s if function.timeout_s is None else function.timeout_s
        incr_score: int | None = None
        job_ctx = {
            "job_id": job_id,
            "job_try": job_try,
            "enqueue_time": self._datetime(enqueue_time_ms),
            "score": score,
        }
        ctx = {**self.ctx, **job_ctx}
        if self.on_job_start:
            await self.on_job_start(ctx)

        start_ms = timestamp_ms()
        success = False
        exc_extra = None
        try:
            if log.isEnabledFor(logging.INFO):  # the arguments' repr is dear, and mostly not logged
                extra = f" try={job_try}" if job_try > 1 else ""
                if (start_ms - score) > 1200:
                    extra += f" delayed={(start_ms - score) / 1000:0.2f}s"
                s = args_to_string(args, kwargs)
                log.info("%6.2fs → %s(%s)%s", (start_ms - enqueue_time_ms) / 1000, ref, s, extra)
            self.job_tasks[job_id] = task = self.loop.create_task(function.coroutine(ctx, *args, **kwargs))
            try:
                result = await asyncio.wait_for(task, timeout_s)
            except (Exception, asyncio.CancelledError) as e:
                exc_extra = getattr(e, "extra", None)
                if callable(exc_extra):
                    exc_extra = exc_extra()
                raise
            finally:
                del self.job_tasks[job_id]
        except (Exception, asyncio.CancelledError) as e:
            finished_ms = timestamp_ms()
            t = (finished_ms - start_ms) / 1000
            if self.retry_jobs and isinstance(e, Retry):
                incr_score = e.defer_score
                log.info("%6.2fs ↻ %s retrying job in %0.2fs", t, ref, (e.defer_score or 0) / 1000)
                if e.defer_score:
                    incr_score = e.defer_score + (timestamp_ms() - score)
                self.jobs_retried += 1
            elif job_id in self.aborting_tasks and isinstance(e, asyncio.CancelledError):
                log.info("%6.2fs ⊘ %s aborted", t, ref)
                result, finish = e, True
                self.aborting_tasks.remove(job_id)
                self.jobs_failed += 1
            elif self.retry_jobs and isinstance(e, asyncio.CancelledError | RetryJob):
                log.info("%6.2fs ↻ %s cancelled, will be run again", t, ref)
                self.jobs_retried += 1
            else:
                log.exception(
                    "%6.2fs ! %s failed, %s: %s", t, ref, e.__class__.__name__, e, extra={"extra": exc_extra}
                )
                result, finish = e, True
                self.jobs_failed += 1
        else:
            success, finish = True, True
            finished_ms = timestamp_ms()
            if log.isEnabledFor(logging.INFO):
                result_str = "" if result is None or not self.log_results else truncate(repr(result))
                log.info("%6.2fs ← %s ● %s", (finished_ms - start_ms) / 1000, ref, result_str)
            self.jobs_complete += 1

        keep_forever = (
            self.keep_result_forever if function.keep_result_forever is None else function.keep_result_forever
        )
        result_timeout_s = self.keep_result_s if function.keep_result_s is None else function.keep_result_s
        result_data = None
        if result is not _NO_RESULT and (keep_forever or result_timeout_s > 0):
            result_data = serialize_result(
                function_name,
                args,
                kwargs,
                job_try,
                enqueue_time_ms,
                success,
                result,
                start_ms,
                finished_ms,
                ref,
                self.queue_name,
                job_id=job_id,
                serializer=self.job_serializer,
            )
        if self.on_job_end:
            await self.on_job_end(ctx)
        await asyncio.shield(
            self.finish_job(
                job_id, finish, result_data, result_timeout_s, keep_forever, incr_score, keep_in_progress
            )
        )
        if self.after_job_end:
            await self.after_job_end(ctx)
        return None

    def _datetime(self, unix_ms: int) -> datetime:
        """ARQ's `ms_to_datetime`, its time zone looked up once."""
        if self._tz is None:
            self._tz = get_tz() or UTC
        return datetime.fromtimestamp(unix_ms / 1000, tz=UTC).astimezone(self._tz)

    async def finish_job(
        self,
        job_id: str,
        finish: bool,
        result_data: bytes | None,
        result_timeout_s: float | None,
        keep_result_forever: bool,
        incr_score: int | None,
        keep_in_progress: float | None,
    ) -> None:
        keep = "" if keep_in_progress is None else to_ms(keep_in_progress)
        if finish:
            ttl = "" if keep_result_forever or result_timeout_s is None else to_ms(result_timeout_s)
            await self._end(job_id, keep, "finish", result_data or b"", ttl)
        else:
            await self._end(job_id, keep, "retry", b"", incr_score or "")

    async def finish_failed_job(self, job_id: str, result_data: bytes | None) -> None:
        kept = result_data is not None and (self.keep_result_forever or self.keep_result_s > 0)
        ttl = "" if self.keep_result_forever else to_ms(self.keep_result_s)
        await self._end(job_id, "", "finish", result_data if kept and result_data else b"", ttl)

    async def _end(self, job_id: str, keep: str | int, how: str, result: bytes, ttl: str | int) -> None:
        """Write a job's end with the other jobs' ending meanwhile (see the module's doc)."""
        keys = [in_progress_key_prefix, retry_key_prefix, job_key_prefix, result_key_prefix]
        future: asyncio.Future[None] = self.loop.create_future()
        if self._ending is None:
            self._ending = []
        self._ending.append(([p + job_id for p in keys], [job_id, keep, how, result, ttl], future))
        if self._writer is None or self._writer.done():
            self._writer = self.loop.create_task(self._write_ends())
        await future

    async def _write_ends(self) -> None:
        if self._finish is None:
            self._finish = self.pool.register_script(FINISH)
        while self._ending:
            batch, self._ending = self._ending, []
            keys: list[str] = [self.queue_name, abort_jobs_ss]
            args: list[Any] = []
            for job_keys, job_args, _ in batch:
                keys += job_keys
                args += job_args
            try:
                await self._finish(keys=keys, args=args)
            except Exception as exc:  # Redis unreachable: every job of the batch hears it, as from ARQ's
                for *_, future in batch:
                    if not future.done():
                        future.set_exception(exc)
            else:
                for *_, future in batch:
                    if not future.done():
                        future.set_result(None)


class _NoResult:
    pass


_NO_RESULT = _NoResult()

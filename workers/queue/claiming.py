"""ARQ's worker, with jobs claimed in one round trip per poll instead of four per job.

ARQ's `Worker.start_jobs` claims the jobs it polled one after the other, each with WATCH / EXISTS /
ZSCORE / MULTI-PSETEX-EXEC: four sequential round trips per job before it can start, which made the
claiming — not the jobs — the ceiling of a Warden worker (about 1,100 no-op jobs/s here).
`ClaimingWorker.start_jobs` makes the same decision for all polled jobs in one server-side script: a
job is claimed (its in-progress key set, for its own function's timeout) when no worker runs it and its
score is due, exactly ARQ's conditions, atomically per job; the same script reads each job claimed as
ARQ's `run_job` begins by reading it (the job, its try counted), and `workers.queue.running` runs it as
ARQ's `run_job` does, its end written with the other jobs' ending meanwhile. Unlike ARQ, a poll whose
first jobs are held by other workers (or by one that died, until their claims expire) goes on to the due
jobs behind them until its free slots are filled, a bounded window per round trip. A job found held by
another worker is not asked about again for `HELD_RECHECK_SECONDS`: while the head of the queue is held
(other workers' long jobs), a poll asks Redis only about the jobs it has not seen held, instead of the
same thousands of ids every 10 ms. The keys and their formats are ARQ's. The override relies on
`Worker`'s attributes `sem`, `job_counter`, `tasks`, `in_progress_timeout_s` and a few more, hence the
pinned ARQ minor version in pyproject.toml (tests/unit/test_arq_pin.py lists what to re-check on an upgrade);
tests/component/test_queue_contract.py runs it beside ARQ's own worker, and the end-to-end and fault
tests run it. An idle worker polls less often, down to every 0.1 s (one that polls every 10 ms costs
~5 % of a core doing nothing).

Jobs queued with priority (`workers.queue.enqueue`: scored `PRIORITY_MS` before their time) come first in
ARQ's poll, which reads due jobs in score order; a job is run with its real time (`due_ms`), so that
ARQ's log says how late they are, and a retry's new score (ARQ adds the delay to the score it was given)
stays in the priority band. A worker running `max_jobs` room jobs (ARQ polls nothing then) still takes
priority jobs, up to `PRIORITY_EXTRA` beyond the limit: an outage's escalation does not wait for a slot
among the rooms it is about.

A job naming a function the worker does not have (a web process or a worker of a newer release queued
it) is not dropped as ARQ drops it ("function not found"): `unknown_function` gives the `Function` that
runs it instead (Warden's keeps it as a dead letter, `workers.jobs.delivery.dead_letters`). ARQ's crons
(`cron:…`) are left to ARQ: a newer worker's cron comes again.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from arq.constants import abort_jobs_ss, in_progress_key_prefix, job_key_prefix, retry_key_prefix
from arq.utils import timestamp_ms
from arq.worker import Function
from redis.commands.core import AsyncScript

from workers.queue.enqueue import PRIORITY_MS, due_ms
from workers.queue.jobs import function_of
from workers.queue.running import RETRY_KEY_SECONDS, BatchingWorker, Claimed

IDLE_POLL_SECONDS = 0.1
PRIORITY_EXTRA = 10  # priority jobs a full worker runs beyond `max_jobs`
# A poll whose first jobs were not claimed (others run them) tries this many times as many jobs behind
# them as it has slots left, and reads at most SCAN_LIMIT due jobs beyond ARQ's poll (`_Windows`).
CLAIM_WINDOW = 4
SCAN_LIMIT = 1000
# A job the CLAIM script found held by another worker is left out of this worker's claims this long: its
# holder ends it (it leaves the queue, or a retry gives it a new score and drops the claim) or dies (the
# claim expires after the job's timeout plus 10 s), and either is seen this much later at most.
HELD_RECHECK_SECONDS = 1.0

# KEYS: the queue, ARQ's abort set, then three keys a job: its in-progress key, job key and retry key.
# ARGV: now (ms), whether jobs may be aborted ('1' or '0'), how many jobs to claim at most, then two values
# a job: its id and its claim's time to live (ms). The jobs are tried in order, until that many are
# claimed. A job is claimed as ARQ's `start_jobs` claims it, then read as ARQ's `run_job`
# reads it (`workers.queue.running`). Two lists: five values a claimed job, its id, its score, its
# serialized job ('' when it expired), its try (counted) and whether it had been aborted (1 or 0); then
# the ids of the jobs tried that a worker holds (their in-progress key set).
CLAIM = f"""
local claimed, held = {{}}, {{}}
local limit = tonumber(ARGV[3])
for i = 0, (#KEYS - 2) / 3 - 1 do
  if #claimed >= 5 * limit then break end
  local k, job_id = 3 + 3 * i, ARGV[4 + 2 * i]
  if redis.call('EXISTS', KEYS[k]) == 0 then
    local score = redis.call('ZSCORE', KEYS[1], job_id)
    if score and tonumber(score) <= tonumber(ARGV[1]) then
      redis.call('PSETEX', KEYS[k], ARGV[5 + 2 * i], '1')
      local try = redis.call('INCR', KEYS[k + 2])
      redis.call('EXPIRE', KEYS[k + 2], {RETRY_KEY_SECONDS})
      local aborted = 0
      if ARGV[2] == '1' then aborted = redis.call('ZREM', KEYS[2], job_id) end
      for _, value in ipairs({{job_id, score, redis.call('GET', KEYS[k + 1]) or '', try, aborted}}) do
        claimed[#claimed + 1] = value
      end
    end
  else
    held[#held + 1] = job_id
  end
end
return {{claimed, held}}
"""


class ClaimingWorker(BatchingWorker):
    """`arq.Worker` whose polled jobs are claimed together (see the module's doc)."""

    _claim: AsyncScript | None = None
    _idle_polls = 0
    _extra: frozenset[str] = frozenset()  # priority jobs running beyond `max_jobs`
    _forget_held_at = 0.0

    def __init__(self, *args: Any, unknown_function: Callable[[str], Function] | None = None, **kw: Any):
        super().__init__(*args, **kw)
        self._held: dict[str, float] = {}  # jobs held elsewhere: until when they are not asked about
        if unknown_function is not None:
            self.functions = _OrUnknown(self.functions, unknown_function)

    async def _poll_iteration(self) -> None:
        if self.job_counter >= self.max_jobs:
            await self._start_priority_jobs()
        await super()._poll_iteration()

    async def _start_priority_jobs(self) -> None:
        """Full: claim and start due priority jobs anyway, up to `PRIORITY_EXTRA` of them at a time."""
        self._extra = frozenset(j for j in self._extra if j in self.tasks and not self.tasks[j].done())
        room = PRIORITY_EXTRA - len(self._extra)
        if room <= 0:
            return
        due = timestamp_ms() - PRIORITY_MS
        polled = await self.pool.zrangebyscore(self.queue_name, "-inf", due, start=0, num=room)
        wanted = [j for j in (p.decode() for p in polled) if j not in self.tasks]
        if not wanted:
            return
        for job_id, job in (await self._claimed(wanted, len(wanted))).items():
            self.tasks[job_id] = self.loop.create_task(self.run_claimed(job))
            self._extra |= {job_id}

    async def start_jobs(self, job_ids: list[bytes]) -> None:
        """Claim and start due jobs until the free slots are filled: the first of ARQ's poll, as ARQ would,
        then, for the jobs of a window not claimed (another worker runs them, or one that died still
        holds their claims until they expire), the next ones behind them (`_Windows`)."""
        if not job_ids:
            # Idle: poll less and less often, up to every IDLE_POLL_SECONDS, so that a quiet worker costs
            # next to nothing while a busy one polls every `poll_delay` (ARQ's loop calls this each poll).
            self._idle_polls += 1
            await asyncio.sleep(
                min(IDLE_POLL_SECONDS - self.poll_delay_s, self.poll_delay_s * self._idle_polls)
            )
            return
        self._idle_polls = 0
        free = self.max_jobs - self.job_counter
        if free <= 0:
            return
        for _ in range(free):  # the slots, taken now and given back for the jobs not claimed
            await self.sem.acquire()
            self.job_counter += 1
        started = 0
        try:
            window = _Windows(self, job_ids)
            size = free
            while started < free and (ids := await window.next(size)):
                claimed = await self._claimed(ids, free - started)
                for job_id in ids:
                    job = claimed.get(job_id)
                    if job is None:  # running elsewhere, finished, or re-queued for later: as ARQ skips it
                        continue
                    task = self.loop.create_task(self.run_claimed(job))
                    task.add_done_callback(lambda _: self._release_sem_dec_counter_on_complete())
                    self.tasks[job_id] = task
                    started += 1
                size = (free - started) * CLAIM_WINDOW
        finally:
            self._give_back(free - started)

    async def _claimed(self, job_ids: list[str], limit: int) -> dict[str, Claimed]:
        """The jobs of `job_ids` claimed (see CLAIM), the first `limit` claimable ones at most, by id,
        each with its real time (`due_ms`)."""
        if self._claim is None:
            self._claim = self.pool.register_script(CLAIM)
        keys = [self.queue_name, abort_jobs_ss]
        args: list[str | int] = [timestamp_ms(), int(self.allow_abort_jobs), limit]
        for job_id in job_ids:
            keys += [in_progress_key_prefix + job_id, job_key_prefix + job_id, retry_key_prefix + job_id]
            args += [job_id, self._claim_ms(job_id)]
        values, held = await self._claim(keys=keys, args=args)
        self._note_held(held)
        reply = iter(values)
        claimed = {}
        for job_id, score, value, job_try, aborted in zip(reply, reply, reply, reply, reply, strict=True):
            job = Claimed(job_id.decode(), int(due_ms(int(float(score)))), value, job_try, bool(aborted))
            claimed[job.job_id] = job
        return claimed

    def _note_held(self, held: list[bytes]) -> None:
        """Leave the jobs `held` by other workers out of the next claims for `HELD_RECHECK_SECONDS`."""
        now = time.monotonic()
        if now >= self._forget_held_at:  # the ones seen long enough ago are asked about again
            self._held = {job_id: until for job_id, until in self._held.items() if until > now}
            self._forget_held_at = now + HELD_RECHECK_SECONDS
        until = now + HELD_RECHECK_SECONDS
        self._held.update((job_id.decode(), until) for job_id in held)

    def held_elsewhere(self, job_id: str, now: float) -> bool:
        """Whether another worker was found holding `job_id` less than `HELD_RECHECK_SECONDS` ago."""
        return self._held.get(job_id, 0.0) > now

    def _claim_ms(self, job_id: str) -> int:
        """How long a claim lasts: the job's own timeout plus ARQ's 10 s. (ARQ gives every job the
        longest timeout of all functions, so that escalation's long timeout would keep a room job of a
        worker that died from being run again for minutes.)"""
        function = self.functions.get(function_of(job_id))
        timeout = function.timeout_s if function is not None and function.timeout_s else self.job_timeout_s
        return int(((timeout or 0) + 10) * 1000)

    def _give_back(self, count: int) -> None:
        for _ in range(count):
            self.job_counter -= 1
            self.sem.release()


class _Windows:
    """The due jobs a poll may claim, a window at a time (see `ClaimingWorker.start_jobs`): ARQ's poll, then,
    when it was full, the jobs behind it, `SCAN_LIMIT` at most; jobs the worker runs already, and those
    another worker was found holding lately, left out."""

    def __init__(self, worker: ClaimingWorker, polled: list[bytes]) -> None:
        self._worker = worker
        self._ids = deque(p.decode() for p in polled)
        self._offset = len(polled)
        self._scanned = 0
        capped = worker.burst and worker.max_burst_jobs >= 0  # ARQ's poll read only what the burst may run
        self._more = len(polled) >= worker.queue_read_limit and not capped

    async def next(self, size: int) -> list[str]:
        window: list[str] = []
        now = time.monotonic()
        while len(window) < size:
            if not self._ids and not await self._read(size - len(window)):
                break
            job_id = self._ids.popleft()
            running = self._worker.tasks.get(job_id)
            # a job stays in the sorted set until it ends, here or elsewhere
            if (running is None or running.done()) and not self._worker.held_elsewhere(job_id, now):
                window.append(job_id)
        return window

    async def _read(self, count: int) -> bool:
        """Read up to `count` more due jobs from the queue; whether there were any."""
        count = min(count, SCAN_LIMIT - self._scanned)
        if not self._more or count <= 0:
            return False
        worker = self._worker
        page = await worker.pool.zrangebyscore(
            worker.queue_name, "-inf", timestamp_ms(), start=self._offset, num=count
        )
        self._offset += len(page)
        self._scanned += len(page)
        self._more = len(page) == count
        self._ids.extend(p.decode() for p in page)
        return bool(page)


class _OrUnknown(dict[str, Any]):
    """ARQ's functions by name; a job function it lacks (not a cron) is `unknown(name)` (see the module's
    doc). Not kept: the functions the worker lists stay its own."""

    def __init__(self, functions: dict[str, Any], unknown: Callable[[str], Function]) -> None:
        super().__init__(functions)
        self._unknown = unknown

    def __missing__(self, name: str) -> Function:
        if name.startswith("cron:"):
            raise KeyError(name)
        return self._unknown(name)

"""Warden's ARQ worker (`workers.queue.claiming.ClaimingWorker`) claims polled jobs in one round trip; it
must keep ARQ's promises: every job runs, none runs twice across workers, a job another worker holds
or one deferred to later is left alone, and retries and results work as in ARQ."""

from __future__ import annotations

import asyncio
import math
import time
from collections import Counter
from typing import Any

import pytest
from arq.connections import ArqRedis
from arq.constants import in_progress_key_prefix
from arq.jobs import Job, JobStatus
from arq.worker import Retry, Worker, func

from tests.support.queue_workers import burst_worker
from tests.support.waiting import wait_until
from workers.queue.claiming import HELD_RECHECK_SECONDS, ClaimingWorker
from workers.queue.enqueue import Enqueuer
from workers.queue.running import Claimed

QUEUE = "warden:test-claims"


async def record(ctx: dict[str, Any], job: str) -> str:
    await ctx["redis"].rpush("ran", job)
    await asyncio.sleep(0)  # let the other worker poll meanwhile
    return f"done {job}"


async def flaky(ctx: dict[str, Any], job: str) -> str:
    if ctx["job_try"] == 1:
        raise Retry(defer=0.01)
    await ctx["redis"].rpush("ran", f"{job}@{ctx['job_try']}")
    return "second time"


def _worker(redis: ArqRedis) -> Worker:
    return burst_worker(redis, QUEUE, func(record, name="record"), func(flaky, name="flaky"))


async def test_two_workers_run_every_job_once(redis_url: str) -> None:
    redis = ArqRedis.from_url(redis_url)
    try:
        enqueuer = Enqueuer(redis, QUEUE)
        for i in range(300):
            await enqueuer.enqueue("record", f"job-{i}", f"job-{i}")
        await enqueuer.enqueue("flaky", "flaky", "flaky")
        workers = [_worker(redis), _worker(redis)]
        await asyncio.wait_for(asyncio.gather(*(w.async_run() for w in workers)), timeout=60)
        ran = [r.decode() for r in await redis.lrange("ran", 0, -1)]
        assert sorted(ran) == sorted([f"job-{i}" for i in range(300)] + ["flaky@2"])
        assert all(w.jobs_complete > 0 for w in workers), "both workers took jobs"
        assert sum(w.jobs_complete for w in workers) == 301 and sum(w.jobs_retried for w in workers) == 1
        result = await Job("job-7", redis, _queue_name=QUEUE).result_info()
        assert result is not None and result.result == "done job-7" and result.success
    finally:
        await redis.aclose()


async def test_a_priority_job_queued_behind_a_backlog_runs_first_and_its_retry_stays_ahead(
    redis_url: str,
) -> None:
    """Escalation's jobs are queued with priority: the worker takes them before room jobs queued earlier."""
    redis = ArqRedis.from_url(redis_url)
    try:
        enqueuer = Enqueuer(redis, QUEUE)
        for i in range(50):
            await enqueuer.enqueue("record", f"job-{i}", f"job-{i}")
        await enqueuer.enqueue("flaky", "urgent", "urgent", priority=True)  # retried once, 10 ms later
        worker = _worker(redis)
        worker.max_jobs = 1
        await asyncio.wait_for(worker.async_run(), timeout=60)
        ran = [r.decode() for r in await redis.lrange("ran", 0, -1)]
        assert sorted(ran) == sorted([f"job-{i}" for i in range(50)] + ["urgent@2"])
        assert ran.index("urgent@2") < 10, ran  # its retry, due 10 ms later, still ahead of the backlog
    finally:
        await redis.aclose()


async def held(ctx: dict[str, Any], job: str) -> str:
    await ctx["gate"].wait()
    await ctx["redis"].rpush("ran", job)
    return "released"


async def test_a_worker_full_of_room_jobs_still_runs_a_priority_job(redis_url: str) -> None:
    """ARQ polls nothing while `max_jobs` jobs run: an escalation would wait for a room job to end."""
    redis = ArqRedis.from_url(redis_url)
    try:
        enqueuer = Enqueuer(redis, QUEUE)
        for i in range(5):
            await enqueuer.enqueue("held", f"room-{i}", f"room-{i}")
        gate = asyncio.Event()
        worker = burst_worker(
            redis, QUEUE, func(held, name="held"), func(record, name="record"), max_jobs=2, gate=gate
        )
        running = asyncio.create_task(worker.async_run())

        async def full() -> bool:
            return worker.job_counter == 2

        async def urgent_ran() -> bool:
            return await redis.lrange("ran", 0, -1) == [b"urgent"]

        await wait_until(full, "the worker running max_jobs room jobs", every=0.01)
        await enqueuer.enqueue("record", "urgent", "urgent", priority=True)
        await wait_until(urgent_ran, "the priority job run while the room jobs hold every slot", every=0.01)
        gate.set()  # the room jobs go on
        await asyncio.wait_for(running, timeout=60)
        ran = [r.decode() for r in await redis.lrange("ran", 0, -1)]
        assert ran[0] == "urgent" and sorted(ran[1:]) == [f"room-{i}" for i in range(5)]
        assert worker.job_counter == 0 and worker.jobs_complete == 6
    finally:
        await redis.aclose()


async def test_a_job_held_elsewhere_or_deferred_is_not_started(redis_url: str) -> None:
    redis = ArqRedis.from_url(redis_url)
    try:
        enqueuer = Enqueuer(redis, QUEUE)
        await enqueuer.enqueue("record", "held", "held")
        await redis.psetex(in_progress_key_prefix + "held", 60_000, b"1")  # another worker runs it
        await enqueuer.enqueue("record", "later", "later", defer_until=time.time() + 3600)
        await enqueuer.enqueue("record", "gone", "gone")
        await redis.zrem(QUEUE, "gone")  # finished and removed meanwhile
        await enqueuer.enqueue("record", "due", "due")
        worker = _worker(redis)
        await worker.start_jobs([b"held", b"later", b"gone", b"due"])
        assert list(worker.tasks) == ["due"] and worker.job_counter == 1
        await worker.tasks["due"]
        assert [r.decode() for r in await redis.lrange("ran", 0, -1)] == ["due"]
        assert await Job("held", redis, _queue_name=QUEUE).status() == JobStatus.in_progress
        assert await Job("later", redis, _queue_name=QUEUE).status() == JobStatus.deferred
    finally:
        await redis.aclose()


async def test_a_claim_lasts_its_own_jobs_timeout_so_a_dead_workers_room_job_comes_back_soon(
    redis_url: str,
) -> None:
    """ARQ claims every job for the longest timeout of all functions (+10 s): escalation's long one
    would keep a room job of a worker that died from running again for minutes."""
    redis = ArqRedis.from_url(redis_url)
    try:
        enqueuer = Enqueuer(redis, QUEUE)
        await enqueuer.enqueue("on_deadline", "deadline:RM_1:1", "deadline")
        await enqueuer.enqueue("escalate", "escalate:EV_1#0", "escalation")
        worker = ClaimingWorker(
            functions=[
                func(record, name="on_deadline"),
                func(record, name="escalate", timeout=300),
            ],
            queue_name=QUEUE,
            redis_pool=redis,
            burst=True,
            handle_signals=False,
            job_timeout=30,
            ctx={"redis": redis},
        )
        await worker.start_jobs([b"deadline:RM_1:1", b"escalate:EV_1#0"])
        room_claim = await redis.pttl(in_progress_key_prefix + "deadline:RM_1:1")
        escalation_claim = await redis.pttl(in_progress_key_prefix + "escalate:EV_1#0")
        await asyncio.gather(*worker.tasks.values())
        assert 35_000 < room_claim <= 40_000, room_claim
        assert 305_000 < escalation_claim <= 310_000, escalation_claim
    finally:
        await redis.aclose()


@pytest.mark.parametrize("read_limit", [None, 6], ids=["in-the-poll", "beyond-the-poll"])
async def test_jobs_a_dead_worker_still_holds_at_the_head_do_not_keep_the_due_ones_behind_waiting(
    redis_url: str, read_limit: int | None
) -> None:
    """A worker killed mid-burst leaves its jobs claimed at the head of the queue until their claims
    expire (minutes for an incident report): a live worker starts the due jobs behind them at once, as
    many as it has slots, whether ARQ's poll reached them or not."""
    redis = ArqRedis.from_url(redis_url)
    try:
        enqueuer = Enqueuer(redis, QUEUE)
        for i in range(10):
            await enqueuer.enqueue("record", f"dead-{i}", f"dead-{i}")
            await redis.psetex(in_progress_key_prefix + f"dead-{i}", 300_000, b"1")
        for i in range(5):
            await enqueuer.enqueue("record", f"due-{i}", f"due-{i}")
        worker = burst_worker(redis, QUEUE, func(record, name="record"), max_jobs=4)
        worker.queue_read_limit = read_limit or worker.queue_read_limit
        polled = await redis.zrangebyscore(QUEUE, "-inf", "+inf", start=0, num=worker.queue_read_limit)
        await worker.start_jobs(polled)  # what ARQ's poll gives it
        assert sorted(worker.tasks) == [f"due-{i}" for i in range(4)] and worker.job_counter == 4
        await asyncio.gather(*worker.tasks.values())
        assert sorted(r.decode() for r in await redis.lrange("ran", 0, -1)) == [f"due-{i}" for i in range(4)]
        assert await Job("due-4", redis, _queue_name=QUEUE).status() == JobStatus.queued  # no slot left
        held = [await Job(f"dead-{i}", redis, _queue_name=QUEUE).status() for i in range(10)]
        assert held == [JobStatus.in_progress] * 10  # left to the worker that claimed them
    finally:
        await redis.aclose()


class _Counting(ClaimingWorker):
    """Warden's claiming worker, counting its polls and the jobs it asks Redis to claim."""

    polls = 0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.asked: Counter[str] = Counter()
        self.first_ask: float | None = None  # monotonic time of its first ask

    async def start_jobs(self, job_ids: list[bytes]) -> None:
        self.polls += 1
        await super().start_jobs(job_ids)

    async def _claimed(self, job_ids: list[str], limit: int) -> dict[str, Claimed]:
        if self.first_ask is None:
            self.first_ask = time.monotonic()
        self.asked.update(job_ids)
        return await super()._claimed(job_ids, limit)


async def test_jobs_another_worker_holds_at_the_head_are_not_asked_about_each_poll(redis_url: str) -> None:
    """Another worker's long jobs at the head of the queue: a worker with free slots asks Redis about them
    once in HELD_RECHECK_SECONDS, not at every poll (it claimed the same hundreds of ids every 10 ms); a job
    queued behind them still starts at once, and one whose holder died is taken once asked about again."""
    redis = ArqRedis.from_url(redis_url)
    held = [f"held-{i}" for i in range(300)]
    worker = _Counting(
        functions=[func(record, name="record")],
        queue_name=QUEUE,
        redis_pool=redis,
        handle_signals=False,
        poll_delay=0.01,
        max_jobs=20,
        ctx={"redis": redis},
    )
    try:
        enqueuer = Enqueuer(redis, QUEUE)
        for job_id in held:
            await enqueuer.enqueue("record", job_id, job_id)
            await redis.psetex(in_progress_key_prefix + job_id, 300_000, b"1")
        run = asyncio.create_task(worker.async_run())
        await wait_until(lambda: _true(set(worker.asked) >= set(held)), "every held job asked about")
        polls = worker.polls
        await wait_until(lambda: _true(worker.polls >= polls + 20), "twenty polls more", every=0.01)
        assert worker.first_ask is not None
        # asks counted from the first: at most one more per HELD_RECHECK_SECONDS begun since
        rechecks = math.ceil((time.monotonic() - worker.first_ask) / HELD_RECHECK_SECONDS)
        assert max(worker.asked[job_id] for job_id in held) <= 1 + rechecks, worker.asked.most_common(1)
        await enqueuer.enqueue("record", "behind", "behind")
        await redis.delete(in_progress_key_prefix + "held-7")  # its worker died; its claim ran out
        await wait_until(lambda: _ran(redis, {"behind", "held-7"}), "the job behind, and held-7", timeout=10)
        run.cancel()
        await asyncio.gather(run, *worker.tasks.values(), return_exceptions=True)
    finally:
        await redis.aclose()


async def _true(value: bool) -> bool:
    return value


async def _ran(redis: ArqRedis, jobs: set[str]) -> bool:
    return {r.decode() for r in await redis.lrange("ran", 0, -1)} >= jobs

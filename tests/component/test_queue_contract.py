"""Warden's queue against ARQ's own: what Warden's enqueue writes is what `ArqRedis.enqueue_job` writes,
key by key; the one refuses what the other refuses; jobs queued by either are run by either worker
(Warden's `ClaimingWorker`, ARQ's stock `Worker`); and jobs queued exactly as the previous version of
Warden queued them are run by the current job functions — jobs waiting in Redis survive an upgrade,
those queued before job ids had kinds too (a webhook's was its bare event id), and LiveKit's redelivery
of such a webhook after the upgrade, under the new id, is recorded once all the same.

The ARQ side is written with literal names and ids on purpose: it is the wire format, frozen."""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from arq.connections import ArqRedis
from arq.constants import in_progress_key_prefix
from arq.jobs import Job, JobStatus, deserialize_job_raw
from arq.utils import timestamp_ms
from arq.worker import Worker, func
from sqlalchemy import func as sql
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from service.intake.body import loads_webhook
from tests.support.harness import ROOM, SID, harness
from tests.support.helpers import body
from tests.support.queue_workers import burst_worker
from tests.support.settings import make_settings
from tests.support.waiting import wait_until
from workers.adapters.webhook import from_webhook_json
from workers.core.events import to_dict
from workers.jobs.runtime.context import context
from workers.jobs.runtime.lifecycle import shutdown, startup
from workers.jobs.runtime.worker import worker_settings
from workers.queue.claiming import ClaimingWorker
from workers.queue.depth import Depth, queue_depth
from workers.queue.enqueue import PRIORITY_MS, Enqueuer, due_ms
from workers.queue.jobs import (
    APPLY_WEBHOOK,
    ESCALATE,
    HEARTBEAT,
    ON_DEADLINE,
    OPERATOR_ACTION,
    REPORT_TO_INCIDENT,
    queue_deadline,
    queue_heartbeat,
    queue_incident_report,
    queue_webhook,
)
from workers.store.models import EVENTS
from workers.store.writer import load_room

QUEUE = "warden:queue"
SLACK_MS = 5_000  # two enqueues a few moments apart: their times and time-to-lives differ by that much
AT = float(int(time.time()) + 7200)  # a deadline in two hours, on a whole second as ARQ's datetime keeps it
FAILED = {"action": "ReportFailed", "reason": "no agent after 2 re-dispatch(es)", "redispatches": 2}
EVENT = {"id": "EV_contract", "kind": "participant_joined", "room_sid": "RM_1", "room_name": "call-1"}

Write = Callable[[ArqRedis], Awaitable[object]]

# Each job as Warden queues it now, and as the previous version queued it (ARQ's enqueue_job). (Webhooks
# and heartbeats had other ids before ids had kinds: see the upgrade test below.)
JOBS: dict[str, tuple[Write, Write]] = {
    "webhook": (
        lambda r: queue_webhook(Enqueuer(r, QUEUE), "EV_contract", EVENT, 1.5),
        lambda r: r.enqueue_job(
            "apply_webhook", EVENT, 1.5, _job_id="webhook:EV_contract", _queue_name=QUEUE
        ),
    ),
    "deadline": (
        lambda r: queue_deadline(Enqueuer(r, QUEUE), "RM_1", 2, AT),
        lambda r: r.enqueue_job(
            "on_deadline",
            "RM_1",
            2,
            _job_id="deadline:RM_1:2",
            _queue_name=QUEUE,
            _defer_until=datetime.fromtimestamp(AT, UTC),
        ),
    ),
    "swept deadline": (
        lambda r: queue_deadline(Enqueuer(r, QUEUE), "RM_1", 3),
        lambda r: r.enqueue_job("on_deadline", "RM_1", 3, _job_id="deadline:RM_1:3", _queue_name=QUEUE),
    ),
    "heartbeat": (
        lambda r: queue_heartbeat(Enqueuer(r, QUEUE), "call-1", "agent-1", 1700000000.25),
        lambda r: r.enqueue_job(
            "heartbeat",
            "call-1",
            "agent-1",
            1700000000.25,
            _job_id="heartbeat:84d8c517bb100156bc4c1076382f493a:1700000000",
            _queue_name=QUEUE,
        ),
    ),
    "incident report": (
        lambda r: queue_incident_report(Enqueuer(r, QUEUE), "EV_1#0", "RM_1", FAILED),
        lambda r: r.enqueue_job(
            "report_to_incident", "EV_1#0", "RM_1", FAILED, _job_id="incident:EV_1#0", _queue_name=QUEUE
        ),
    ),
}


async def snapshot(redis: ArqRedis) -> dict[str, tuple[Any, int]]:
    """Every key in Redis: the queue's members and scores, or the deserialized job; and its time to live."""
    found: dict[str, tuple[Any, int]] = {}
    for key in await redis.keys("*"):
        if await redis.type(key) == b"zset":
            value: Any = {m.decode(): s for m, s in await redis.zrange(key, 0, -1, withscores=True)}
        else:
            value = deserialize_job_raw(await redis.get(key))  # function, args, kwargs, job_try, enqueued at
        found[key.decode()] = (value, await redis.pttl(key))
    return found


def close(a: float, b: float) -> bool:
    return abs(a - b) < SLACK_MS


@pytest.mark.parametrize("job", list(JOBS))
async def test_warden_writes_what_arq_writes(redis_url: str, job: str) -> None:
    ours, arqs = JOBS[job]
    redis = ArqRedis.from_url(redis_url)
    try:
        await arqs(redis)
        expected = await snapshot(redis)
        await redis.flushdb()
        assert await ours(redis) is True
        written = await snapshot(redis)
    finally:
        await redis.aclose()
    assert sorted(written) == sorted(expected)
    for key, (value, ttl) in written.items():
        want, want_ttl = expected[key]
        assert close(ttl, want_ttl), (key, ttl, want_ttl)
        if key == QUEUE:
            assert value.keys() == want.keys()
            # an incident report is scored ahead of room jobs (`PRIORITY_MS` before its time); both versions'
            # workers run it when due
            assert all(close(due_ms(value[m]), want[m]) for m in value), (value, want)
            assert all((value[m] < PRIORITY_MS) == (job == "incident report") for m in value), value
            if job == "deadline":
                assert value == want == {"deadline:RM_1:2": AT * 1000}
        else:
            assert value[:4] == want[:4] and close(value[4], want[4]), (value, want)


async def _warden(redis: ArqRedis, job_id: str) -> bool:
    return await Enqueuer(redis, QUEUE).enqueue("apply_webhook", job_id, EVENT, 1.5)


async def _arq(redis: ArqRedis, job_id: str) -> bool:
    return await redis.enqueue_job("apply_webhook", EVENT, 1.5, _job_id=job_id, _queue_name=QUEUE) is not None


@pytest.mark.parametrize("enqueue", [_warden, _arq], ids=["warden", "arq"])
async def test_an_id_queued_or_done_is_refused(
    redis_url: str, enqueue: Callable[[ArqRedis, str], Awaitable[bool]]
) -> None:
    redis = ArqRedis.from_url(redis_url)
    try:
        assert await enqueue(redis, "EV_1") is True
        before = await redis.get("arq:job:EV_1")
        assert await enqueue(redis, "EV_1") is False  # still queued
        assert await redis.get("arq:job:EV_1") == before  # and left as it was
        await redis.set("arq:result:EV_2", b"done")  # ran, its result kept
        assert await enqueue(redis, "EV_2") is False
        assert await redis.zrange(QUEUE, 0, -1) == [b"EV_1"]
    finally:
        await redis.aclose()


async def ran(ctx: dict[str, Any], job: str) -> str:
    await ctx["redis"].rpush("ran", job)
    await asyncio.sleep(0)  # let another worker poll meanwhile
    return f"done {job}"


def _worker(cls: type[Worker], redis: ArqRedis) -> Worker:
    return burst_worker(redis, QUEUE, func(ran, name="ran"), cls=cls)


async def _queue(redis: ArqRedis, writer: str, ids: list[str], function: str = "ran") -> None:
    enqueuer = Enqueuer(redis, QUEUE)
    for job_id in ids:
        if writer == "warden":
            assert await enqueuer.enqueue(function, job_id, job_id) is True
        else:
            assert await redis.enqueue_job(function, job_id, _job_id=job_id, _queue_name=QUEUE) is not None


@pytest.mark.parametrize(
    ("writer", "worker"), [("arq", ClaimingWorker), ("warden", Worker)], ids=["arq→warden", "warden→arq"]
)
async def test_jobs_queued_by_one_are_run_by_the_other(
    redis_url: str, writer: str, worker: type[Worker]
) -> None:
    redis = ArqRedis.from_url(redis_url)
    try:
        ids = [f"job-{i}" for i in range(40)]
        await _queue(redis, writer, ids)
        running = _worker(worker, redis)
        await asyncio.wait_for(running.async_run(), timeout=30)
        assert sorted(r.decode() for r in await redis.lrange("ran", 0, -1)) == sorted(ids)
        result = await Job("job-7", redis, _queue_name=QUEUE).result_info()
        assert result is not None and result.success and result.result == "done job-7"
    finally:
        await redis.aclose()


async def test_stock_and_claiming_workers_share_a_queue_and_run_each_job_once(redis_url: str) -> None:
    started: set[str] = set()
    both = asyncio.Event()

    async def shared(ctx: dict[str, Any], job: str) -> None:
        # A job finishes only once each worker has started one: neither can drain the queue alone.
        started.add(ctx["worker"])
        if len(started) == 2:
            both.set()
        await both.wait()
        await ctx["redis"].rpush("ran", job)

    redis = ArqRedis.from_url(redis_url)
    try:
        ids = [f"job-{i}" for i in range(300)]
        await _queue(redis, "warden", ids[::2], "shared")
        await _queue(redis, "arq", ids[1::2], "shared")
        workers = [
            burst_worker(redis, QUEUE, func(shared, name="shared"), cls=cls, worker=cls.__name__)
            for cls in (Worker, ClaimingWorker)
        ]
        await asyncio.wait_for(asyncio.gather(*(w.async_run() for w in workers)), timeout=60)
        assert sorted(r.decode() for r in await redis.lrange("ran", 0, -1)) == sorted(ids)
        assert started == {"Worker", "ClaimingWorker"}
    finally:
        await redis.aclose()


def test_the_worker_runs_the_functions_the_queue_names(redis_url: str) -> None:
    functions = worker_settings(make_settings(redis_url=redis_url))["functions"]
    assert {f.name for f in functions} == {
        APPLY_WEBHOOK,
        ON_DEADLINE,
        HEARTBEAT,
        REPORT_TO_INCIDENT,
        ESCALATE,
        OPERATOR_ACTION,
    }


async def test_jobs_queued_by_the_previous_version_run_after_the_upgrade(
    redis_url: str, database_url: str
) -> None:
    async with harness(redis_url, database_url) as h:
        settings = context(h.ctx).settings
        raw = body("participant_joined", id="EV_old", created_at=int(time.time()), sid=SID, participant={})
        event = to_dict(from_webhook_json(loads_webhook(raw), fallback_id="none"))
        now = time.time()
        # Exactly as the previous version wrote them: the web's webhook and heartbeat, the sweep's timer.
        await h.queue.enqueue_job("apply_webhook", event, now, _job_id="EV_old", _queue_name=QUEUE)
        await h.queue.enqueue_job(
            "heartbeat",
            "call-42",
            "agent-1",
            now,
            _job_id=f"heartbeat:call-42:agent-1:{int(now)}",
            _queue_name=QUEUE,
        )
        await h.queue.enqueue_job("on_deadline", SID, 9, _job_id=f"deadline:{SID}:9", _queue_name=QUEUE)
        # A room's failure as versions before issue 22 queued it: the job's old name, the action's old name.
        await h.send("room_started")  # a room to report about (no one in it: no timer of its own)
        failed = {"action": "Escalate", "reason": "no agent after 2 re-dispatch(es)", "redispatches": 2}
        await h.queue.enqueue_job(
            "escalate", "EV_2#0", SID, failed, _job_id="escalate:EV_2#0", _queue_name=QUEUE
        )
        options = {
            **worker_settings(settings),
            "on_startup": functools.partial(startup, settings=settings, effects=context(h.ctx).effects),
            "cron_jobs": [],
        }
        pool = ArqRedis.from_url(redis_url)
        worker = ClaimingWorker(
            **options, redis_pool=pool, burst=True, max_burst_jobs=4, handle_signals=False
        )
        try:
            await asyncio.wait_for(worker.async_run(), timeout=30)
        finally:
            await shutdown(worker.ctx)
            await pool.aclose()
        assert (worker.jobs_complete, worker.jobs_failed) == (4, 0)
        assert h.incidents.failed == [(ROOM, "no agent after 2 re-dispatch(es)")]  # reported as it was
        webhook = await Job("EV_old", h.queue, _queue_name=QUEUE).result_info()
        assert webhook is not None and webhook.success, webhook
        assert await load_room(h.engine, SID) is not None
        heartbeat = await Job(
            f"heartbeat:call-42:agent-1:{int(now)}", h.queue, _queue_name=QUEUE
        ).result_info()
        assert heartbeat is not None and heartbeat.success, heartbeat
        # The timer keeps no result: it ran, and left neither its job nor its place in the queue.
        assert await Job(f"deadline:{SID}:9", h.queue, _queue_name=QUEUE).status() == JobStatus.not_found
        # LiveKit redelivers EV_old after the upgrade: a new job (its id has a kind now), which records
        # nothing new, since the event's id is unique in the database.
        before = await _logged(h.engine, "EV_old")
        assert await queue_webhook(Enqueuer(h.queue, QUEUE), "EV_old", event, time.time())
        pool = ArqRedis.from_url(redis_url)
        again = ClaimingWorker(**options, redis_pool=pool, burst=True, handle_signals=False)
        try:
            await asyncio.wait_for(again.async_run(), timeout=30)
        finally:
            await shutdown(again.ctx)
            await pool.aclose()
        redelivered = await Job("webhook:EV_old", h.queue, _queue_name=QUEUE).result_info()
        assert redelivered is not None and redelivered.result == "duplicate", redelivered
        assert await _logged(h.engine, "EV_old") == before == 1


async def _logged(engine: AsyncEngine, event_id: str) -> int:
    """How often the event log holds `event_id`."""
    async with engine.connect() as connection:
        found = await connection.scalar(
            select(sql.count()).select_from(EVENTS).where(EVENTS.c.event_id == event_id)
        )
        return int(found or 0)


async def test_queue_depth_counts_jobs_due_and_deferred(redis_url: str) -> None:
    redis = ArqRedis.from_url(redis_url)
    try:
        assert await queue_depth(redis, QUEUE) == Depth(ready=0, deferred=0, lag_seconds=0.0)
        await redis.enqueue_job("ran", "due", _job_id="due", _queue_name=QUEUE)
        await redis.enqueue_job("ran", "later", _job_id="later", _queue_name=QUEUE, _defer_by=3600)
        depth = await queue_depth(redis, QUEUE)
        assert (depth.ready, depth.deferred) == (1, 1) and 0.0 <= depth.lag_seconds < SLACK_MS / 1000
    finally:
        await redis.aclose()


def ago(seconds: float) -> datetime:
    return datetime.fromtimestamp(time.time() - seconds, UTC)


async def test_queue_lag_is_the_wait_for_a_worker_not_the_time_a_job_runs(redis_url: str) -> None:
    """A job a worker is running stays in ARQ's sorted set until it finishes: its time running is not
    lag. A due job left waiting (the worker's one slot is taken) is."""
    redis = ArqRedis.from_url(redis_url)
    started, release = asyncio.Event(), asyncio.Event()

    async def slow(ctx: dict[str, Any], job: str) -> str:
        started.set()
        await release.wait()
        return job

    worker = burst_worker(redis, QUEUE, func(slow, name="slow"), max_jobs=1)
    try:
        await redis.enqueue_job("slow", "running", _job_id="running", _queue_name=QUEUE, _defer_until=ago(5))
        run = asyncio.create_task(worker.async_run())
        await asyncio.wait_for(started.wait(), timeout=10)
        assert (await queue_depth(redis, QUEUE)).lag_seconds < 1.0  # due 5 s ago, but running
        await redis.enqueue_job("slow", "waiting", _job_id="waiting", _queue_name=QUEUE, _defer_until=ago(3))
        depth = await queue_depth(redis, QUEUE)
        # the waiting one's lag (ARQ keeps scores in whole milliseconds: 3 s may read a few µs short)
        assert depth.ready == 2 and 2.99 <= depth.lag_seconds < 5.0
        release.set()
        await asyncio.wait_for(run, timeout=10)

        async def empty() -> bool:
            return await queue_depth(redis, QUEUE) == Depth(ready=0, deferred=0, lag_seconds=0.0)

        await wait_until(empty, "both jobs ran and left the queue")
    finally:
        await redis.aclose()


async def test_queue_depth_counts_priority_jobs_by_when_they_are_due(redis_url: str) -> None:
    """An escalation is scored years before its time to come first; it is not years late."""
    redis = ArqRedis.from_url(redis_url)
    try:
        enqueuer = Enqueuer(redis, QUEUE)
        await enqueuer.enqueue("escalate", "escalate:now", priority=True)
        await enqueuer.enqueue("escalate", "escalate:later", priority=True, defer_until=time.time() + 3600)
        # scored as ARQ scores jobs: whole milliseconds (a fractional score reads up to 0.5 ms short)
        await redis.zadd(QUEUE, {"escalate:waited": timestamp_ms() - 30_000 - PRIORITY_MS})
        await redis.enqueue_job("ran", "due", _job_id="due", _queue_name=QUEUE, _defer_by=-5)
        depth = await queue_depth(redis, QUEUE)
        assert (depth.ready, depth.deferred) == (3, 1)
        assert 30.0 <= depth.lag_seconds < 30.0 + SLACK_MS / 1000  # the escalation waiting 30 s
        await redis.zrem(QUEUE, "escalate:waited")
        assert 5.0 <= (await queue_depth(redis, QUEUE)).lag_seconds < 5.0 + SLACK_MS / 1000
    finally:
        await redis.aclose()


async def test_a_job_still_running_takes_no_slot_from_the_jobs_queued_behind_it(redis_url: str) -> None:
    """A running job stays at the head of ARQ's sorted set: a worker with a free slot still starts the job
    behind it (a running job taken for a new one filled the slot, and nothing else started until it
    ended: a room's batch waiting in the group commit stalled every other room's job)."""
    redis = ArqRedis.from_url(redis_url)
    release, behind_ran = asyncio.Event(), asyncio.Event()

    async def slow(ctx: dict[str, Any], job: str) -> str:
        await release.wait()
        return job

    async def quick(ctx: dict[str, Any], job: str) -> str:
        behind_ran.set()
        return job

    worker = burst_worker(redis, QUEUE, func(slow, name="slow"), func(quick, name="quick"), max_jobs=2)
    try:
        await redis.enqueue_job("slow", "head", _job_id="head", _queue_name=QUEUE, _defer_until=ago(5))
        run = asyncio.create_task(worker.async_run())
        await wait_until(lambda: _running(redis, "head"), "the head job running")
        await redis.enqueue_job("quick", "behind", _job_id="behind", _queue_name=QUEUE)
        await asyncio.wait_for(behind_ran.wait(), timeout=10)  # while the head job still runs
        release.set()
        await asyncio.wait_for(run, timeout=10)
    finally:
        release.set()
        await redis.aclose()


async def _running(redis: ArqRedis, job_id: str) -> bool:
    return bool(await redis.exists(in_progress_key_prefix + job_id))

"""Warden's worker runs and ends jobs as ARQ's own worker does (`workers.queue.running`: the job's reads
come with its claim, the ends of jobs finishing together are written in one round trip): the same
jobs, run by each, leave the same keys in Redis — the same results (or none where none is kept), the
same tries, failures and retries, nothing of a finished job but its result, a cron's claim kept."""

from __future__ import annotations

import asyncio
from typing import Any

from arq import cron
from arq.connections import ArqRedis
from arq.constants import abort_jobs_ss, job_key_prefix
from arq.jobs import deserialize_result
from arq.worker import Retry, RetryJob, Worker, func

from workers.queue.claiming import ClaimingWorker
from workers.queue.enqueue import Enqueuer

QUEUE = "warden:test-ends"
SLACK_MS = 5_000


async def ok(ctx: dict[str, Any], n: int) -> str:
    return f"done {n}"


async def broken(ctx: dict[str, Any]) -> None:
    raise ValueError("a bug")


async def later(ctx: dict[str, Any]) -> str:
    if ctx["job_try"] < 3:
        raise Retry(defer=0.01)
    return f"try {ctx['job_try']}"


async def again(ctx: dict[str, Any]) -> str:
    if ctx["job_try"] == 1:
        raise RetryJob()
    return "again"


async def retries_forever(ctx: dict[str, Any]) -> None:
    raise Retry(defer=0.01)


async def slow(ctx: dict[str, Any]) -> None:
    await asyncio.sleep(10)


async def tick(ctx: dict[str, Any]) -> str:
    return "ticked"


def _worker(cls: type[Worker], redis: ArqRedis) -> Worker:
    return cls(
        functions=[
            func(ok, name="ok"),
            func(ok, name="unkept", keep_result=0),
            func(broken, name="broken"),
            func(later, name="later"),
            func(again, name="again"),
            func(retries_forever, name="forever", max_tries=2),
            func(slow, name="slow", timeout=0.05),
        ],
        cron_jobs=[cron(tick, hour=3, minute=7)],  # never due here; run as a job queued by hand
        queue_name=QUEUE,
        redis_pool=redis,
        burst=True,
        handle_signals=False,
        poll_delay=0.001,
        allow_abort_jobs=True,
        max_jobs=4,
    )


async def _run(redis: ArqRedis, cls: type[Worker]) -> dict[str, Any]:
    """Queue one job of each kind, run them with a `cls` worker, and read what Redis keeps after."""
    await redis.flushdb()
    enqueuer = Enqueuer(redis, QUEUE)
    for n in range(30):
        await enqueuer.enqueue("ok", f"ok-{n}", n)
    await enqueuer.enqueue("unkept", "unkept", 0)
    for name in ("broken", "later", "again", "forever", "slow", "cron:tick", "missing"):
        await enqueuer.enqueue(name, name)
    await enqueuer.enqueue("ok", "expired", 0)
    await redis.delete(job_key_prefix + "expired")
    await enqueuer.enqueue("ok", "aborted", 0)
    await redis.zadd(abort_jobs_ss, {"aborted": 1})
    worker = _worker(cls, redis)
    await asyncio.wait_for(worker.async_run(), timeout=60)
    kept: dict[str, Any] = {}
    for key in sorted(k.decode() for k in await redis.keys("*") if not k.endswith(b"health-check")):
        ttl = await redis.pttl(key)
        if key.startswith("arq:result:"):
            r = deserialize_result(await redis.get(key))
            kept[key] = (r.function, r.args, r.success, repr(r.result), r.job_try, ttl)
        elif await redis.type(key) == b"zset":
            kept[key] = await redis.zrange(key, 0, -1)
        else:
            kept[key] = (await redis.get(key), ttl)
    kept["counts"] = (worker.jobs_complete, worker.jobs_failed, worker.jobs_retried)
    return kept


async def test_jobs_end_in_redis_as_arqs_own_worker_ends_them(redis_url: str) -> None:
    redis = ArqRedis.from_url(redis_url)
    try:
        arqs = await _run(redis, Worker)
        ours = await _run(redis, ClaimingWorker)
    finally:
        await redis.aclose()
    assert sorted(ours) == sorted(arqs)
    for key, want in arqs.items():
        got = ours[key]
        if isinstance(want, tuple) and isinstance(want[-1], int) and key != "counts":
            assert got[:-1] == want[:-1], key
            assert abs(got[-1] - want[-1]) < SLACK_MS, (key, got[-1], want[-1])
        else:
            assert got == want, key
    # What ARQ's worker does, to the letter: a sample of it, so that the comparison above is not empty.
    assert arqs["arq:result:ok-7"][:5] == ("ok", (7,), True, "'done 7'", 1)
    assert "arq:result:unkept" not in arqs
    assert arqs["arq:result:later"][2:5] == (True, "'try 3'", 3)
    assert arqs["arq:result:forever"][2:4] == (False, "JobExecutionFailed('max 2 retries exceeded')")
    assert arqs["arq:result:expired"][2:4] == (False, "JobExecutionFailed('job expired')")
    assert arqs["arq:result:slow"][2:4] == (False, "TimeoutError()")
    assert arqs["arq:result:aborted"][2:4] == (False, "CancelledError()")
    assert arqs["arq:result:again"][2:5] == (True, "'again'", 2)
    assert arqs["arq:in-progress:cron:tick"][0] == b"1"  # a cron's claim outlives it, for a minute
    assert not any(k.startswith(("arq:job:", "arq:retry:")) for k in arqs)

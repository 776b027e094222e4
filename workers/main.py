"""The ARQ worker: jobs that fold webhooks into rooms. Start it with `python -m workers`.

Every job may run twice (a retry, a worker that died mid-job): `apply_webhook` is idempotent through
the event log's unique event id, and per-room writes are serialised by the room row's version (across
processes) and by a striped lock (inside one process, so that its own jobs do not collide).
"""

from __future__ import annotations

import asyncio
import logging
import zlib
from typing import Any

from arq.connections import RedisSettings
from arq.worker import Retry
from sqlalchemy.exc import DBAPIError, OperationalError

from workers.db import make_engine
from workers.events import from_dict
from workers.room_state import Policy
from workers.settings import Settings
from workers.store import record_event

log = logging.getLogger("warden.worker")

LOCK_STRIPES = 256
JOB_TIMEOUT_SECONDS = 30
MAX_TRIES = 25


def _retry_delay(job_try: int) -> float:
    """Back off 1, 2, 4 ... seconds, capped at a minute, while the database is unreachable."""
    return float(min(60, 2 ** max(0, job_try - 1)))


async def apply_webhook(ctx: dict[str, Any], event: dict[str, Any], received_at: float) -> str:
    """Job: record one reduced webhook (see `workers.events`) and fold it into its room."""
    parsed = from_dict(event)
    lock = ctx["locks"][zlib.crc32(parsed.room_sid.encode()) % LOCK_STRIPES]
    try:
        async with lock:
            outcome = await record_event(ctx["engine"], parsed, received_at=received_at, policy=ctx["policy"])
    except (OperationalError, DBAPIError, OSError) as exc:
        delay = _retry_delay(ctx["job_try"])
        log.warning(
            "database unavailable (%s); event %s retried in %.0fs", type(exc).__name__, parsed.id, delay
        )
        raise Retry(defer=delay) from exc
    log.info("event %s %s room=%s: %s", parsed.id, parsed.name, parsed.room_name or "-", outcome)
    return str(outcome)


async def startup(ctx: dict[str, Any]) -> None:
    settings: Settings = ctx["settings"]
    ctx["engine"] = make_engine(settings.database_url)
    ctx["policy"] = Policy(agent_name=settings.warden_agent_name)
    ctx["locks"] = [asyncio.Lock() for _ in range(LOCK_STRIPES)]


async def shutdown(ctx: dict[str, Any]) -> None:
    await ctx["engine"].dispose()


def worker_settings(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for `arq.Worker`, built from validated settings."""
    return {
        "functions": [apply_webhook],
        "queue_name": settings.warden_queue_name,
        "redis_settings": RedisSettings.from_dsn(settings.redis_url),
        "on_startup": startup,
        "on_shutdown": shutdown,
        "ctx": {"settings": settings},
        "job_timeout": JOB_TIMEOUT_SECONDS,
        "max_tries": MAX_TRIES,
        "poll_delay": 0.1,
        "max_jobs": 20,
    }

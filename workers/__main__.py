"""`python -m workers`: start the ARQ worker (the Procfile's `worker:` line).

ARQ's worker stops when it loses Redis; this entry point starts a fresh one after a backoff instead,
so that a Redis restart or failover needs no person (queued jobs survive in a persistent Redis, and a
job that was running is run again by ARQ).

The event loop is uvloop's when it is installed (`uvicorn[standard]` brings it), as uvicorn chooses for
the web process; asyncio's otherwise.
"""

from __future__ import annotations

import asyncio
import functools
import gc
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any
from wsgiref.simple_server import WSGIServer

from redis.exceptions import RedisError

from workers import logs
from workers.jobs.runtime import metrics
from workers.jobs.runtime.worker import worker_settings
from workers.queue.claiming import ClaimingWorker
from workers.settings import Settings, load_settings_or_exit

log = logging.getLogger("warden.worker")
MAX_BACKOFF_SECONDS = 30.0


def main() -> None:
    settings = load_settings_or_exit(worker=True)
    logs.configure(settings.warden_log_level, settings.warden_log_format, process="worker")
    logs.allow_dev_keys(settings.api_keys)
    serve_metrics(settings)
    if settings.observing:
        alerts = "alerts sent, marked" if settings.warden_observe_alerts else "no alert sent"
        log.warning("WARDEN_MODE=observe: decisions are recorded, none carried out (%s)", alerts)
    use_uvloop()
    backoff = 1.0
    while True:
        started = time.monotonic()
        try:
            options = worker_settings(settings)
            options["on_startup"] = functools.partial(frozen_after, options["on_startup"])
            ClaimingWorker(**options).run()
            return  # stopped by a signal
        except (RedisError, OSError) as exc:
            if time.monotonic() - started > 60:
                backoff = 1.0  # it had been running fine: this is a new outage
            log.error("worker lost Redis (%s); starting a new worker in %.0f s", type(exc).__name__, backoff)
            time.sleep(backoff)
            backoff = min(MAX_BACKOFF_SECONDS, backoff * 2)


async def frozen_after(startup: Callable[[dict[str, Any]], Awaitable[None]], ctx: dict[str, Any]) -> None:
    """ARQ's on_startup, then the objects made so far (modules, SQLAlchemy's metadata, protobuf's
    descriptors, the worker's context) left out of every later garbage collection, as the web process
    does (`service.__main__.freeze_startup_objects`): each full collection walked them all. They live as
    long as the process anyway."""
    await startup(ctx)
    gc.collect()
    gc.freeze()


def serve_metrics(settings: Settings) -> WSGIServer | None:
    """The worker's metrics on `WARDEN_HOST`:`WARDEN_WORKER_METRICS_PORT`, or exit naming the port."""
    port = settings.warden_worker_metrics_port
    metrics.start_sli_series(a for r in settings.rules().rules for a in r.agents or ())
    try:
        return metrics.serve(port, settings.warden_host)
    except OSError as exc:
        raise SystemExit(
            f"WARDEN_WORKER_METRICS_PORT={port} on WARDEN_HOST={settings.warden_host}: {exc.strerror}"
        ) from None


def use_uvloop() -> bool:
    """Make new event loops uvloop's (ARQ's worker makes its own) when uvloop is installed."""
    try:
        import uvloop
    except ImportError:
        return False
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    return True


if __name__ == "__main__":
    main()

"""The web process's uvicorn: Warden's app on `WARDEN_HOST`:`PORT`, holding its clients to the read
limits of `service.connections` and `service.body_reading`, within the files the process may open.

`web_config(settings, app)` is what `python -m service` runs and what the slow-client tests serve.
"""

from __future__ import annotations

import resource
from typing import Any

from service.connections import ReadLimits, WardenConfig
from workers.core.errors import SettingsError
from workers.settings import Settings

# Descriptors the web process needs beside its clients' connections: the listening socket, Redis's
# pool, the database's (up to 20 on PostgreSQL), the event loop's own, logs and imports.
FILES_RESERVED = 128
UNLIMITED = 1 << 20  # Linux's own ceiling on a process's files (fs.nr_open)


def open_files_limit(concurrency: int) -> int:
    """The open-files limit the process runs with, raised to the hard limit if `concurrency` requests
    (a connection each) would not fit under the soft one (as Go's runtime does); `SettingsError` naming
    `WARDEN_WEB_CONCURRENCY` when even the hard limit is too low."""
    needed = concurrency + FILES_RESERVED
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return UNLIMITED
    if soft >= needed:
        return soft
    if hard != resource.RLIM_INFINITY and hard < needed:
        raise SettingsError(
            f"WARDEN_WEB_CONCURRENCY: {concurrency} requests at once need {needed} open files, and this "
            f"process may open {hard} at most (ulimit -n; systemd LimitNOFILE=, docker --ulimit nofile=): "
            "raise that limit or lower WARDEN_WEB_CONCURRENCY"
        )
    raised = hard if hard != resource.RLIM_INFINITY else needed
    resource.setrlimit(resource.RLIMIT_NOFILE, (raised, hard))
    return raised


def read_limits(settings: Settings, open_files: int) -> ReadLimits:
    return ReadLimits(
        header_timeout=settings.warden_header_timeout_seconds,
        body_timeout=settings.warden_body_timeout_seconds,
        max_open=open_files - FILES_RESERVED,
    )


def web_config(settings: Settings, app: Any, *, port: int | None = None) -> WardenConfig:
    """uvicorn's configuration for Warden's web process (`port` replaces `PORT`, for tests). Its
    `limit_concurrency` stays off: `service.concurrency` counts requests, not connections."""
    return WardenConfig(
        app,
        limits=read_limits(settings, open_files_limit(settings.warden_web_concurrency)),
        host=settings.warden_host,
        port=settings.port if port is None else port,
        log_level=settings.warden_log_level.lower(),
        # Longer than its clients keep an idle connection (httpx 5 s, aiohttp 15 s, a load balancer's 60 s):
        # the client closes first. A server that closes first races the client's next request on it.
        timeout_keep_alive=settings.warden_keepalive_seconds,
        # uvicorn's loggers go to ours, not to its own handlers: its lines (a request path may hold a
        # room's name) are masked, clipped and escaped like every other (see `workers.logs`).
        log_config=None,
    )

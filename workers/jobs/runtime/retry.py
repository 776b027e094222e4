"""The jobs' retry policy: how long a job may run, how often it is tried, and how long it waits
between tries while the database or LiveKit is unavailable."""

from __future__ import annotations

import logging
from typing import Any

from arq.worker import Retry

log = logging.getLogger("warden.worker")

JOB_TIMEOUT_SECONDS = 30
MAX_TRIES = 25


def retry_delay(job_try: int) -> float:
    """Back off 1, 2, 4 ... seconds, capped at 30."""
    return float(min(30, 2 ** max(0, job_try - 1)))


def retry_later(ctx: dict[str, Any], message: str, *args: object) -> Retry:
    """The `Retry` that backs the running job (ARQ's `ctx`) off; `message % (*args, delay)` is logged."""
    delay = retry_delay(ctx["job_try"])
    log.warning(message, *args, delay)
    return Retry(defer=delay)

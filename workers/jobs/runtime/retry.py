"""The jobs' retry policy: how long a job may run, how often it is tried, and how long it waits
between tries while the database or LiveKit is unavailable; and what a run that does the same for many
rooms or agents at once does when one of them fails (`each_alone`)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, TypeVar

from arq.worker import Retry

from workers.store.runs import ends_the_run, passed_over

log = logging.getLogger("warden.worker")

JOB_TIMEOUT_SECONDS = 30
MAX_TRIES = 25

T = TypeVar("T")


def retry_delay(job_try: int) -> float:
    """Back off 1, 2, 4 ... seconds, capped at 30."""
    return float(min(30, 2 ** max(0, job_try - 1)))


def retry_later(ctx: dict[str, Any], message: str, *args: object) -> Retry:
    """The `Retry` that backs the running job (ARQ's `ctx`) off; `message % (*args, delay)` is logged."""
    delay = retry_delay(ctx["job_try"])
    log.warning(message, *args, delay)
    return Retry(defer=delay)


def each_alone(
    run: str, what: str, names: Sequence[str], results: Sequence[T | BaseException]
) -> list[T | None]:
    """The `results` of work done together for each of `names` (`asyncio.gather(...,
    return_exceptions=True)`) in the run `run`, one's failure its own (`workers.store.runs.passed_over`:
    `what` says what a name is) and None in its place, the others' results kept. What ends the run
    (`workers.store.runs.ends_the_run`: an outage, a `Retry`, a cancellation) is raised instead."""
    kept: list[T | None] = []
    for name, result in zip(names, results, strict=True):
        if not isinstance(result, BaseException):
            kept.append(result)
            continue
        if ends_the_run(result):
            raise result
        passed_over(run, what, name, result)
        kept.append(None)
    return kept

"""The ARQ worker's configuration: which functions and crons it runs (their names are the queue's
wire format), with what retries and timeouts, and its start-up and shutdown (`python -m workers`)."""

from __future__ import annotations

import functools
from typing import Any

from arq import cron
from arq.worker import Function, func

from workers.jobs.canaries.runner import lease_seconds
from workers.jobs.delivery.dead_letters import Job, dead_lettered, unknown_job
from workers.jobs.delivery.incident_reports import INCIDENT_REPORT_TIMEOUT_SECONDS, report_to_incident
from workers.jobs.delivery.operator import operator_action
from workers.jobs.rooms.crons import canaries, discover, prune, reconcile, sweep
from workers.jobs.rooms.jobs import apply_webhook, heartbeat, on_deadline
from workers.jobs.rooms.liveness import liveness
from workers.jobs.runtime.lifecycle import shutdown, startup
from workers.jobs.runtime.metrics import timed_job
from workers.jobs.runtime.retry import JOB_TIMEOUT_SECONDS, MAX_TRIES
from workers.queue.jobs import (
    APPLY_WEBHOOK,
    ESCALATE,
    HEARTBEAT,
    ON_DEADLINE,
    OPERATOR_ACTION,
    REPORT_TO_INCIDENT,
)
from workers.settings import DISCOVER_TICK_SECONDS, LIVENESS_TICK_SECONDS, Settings


def _job(name: str, job: Job) -> Job:
    """A job function as the worker runs it: kept as a dead letter when it fails for good, counted and
    timed (failures included) in the worker's metrics."""
    return dead_lettered(name, timed_job(job), max_tries=MAX_TRIES)


def _unknown_function(name: str) -> Function:
    """How the worker runs a job naming a function it does not have: as a dead letter once retried (no
    result kept: a request of the web's may be queued again under the same id)."""
    return func(_job(name, unknown_job(name)), name=name, max_tries=MAX_TRIES, keep_result=0)


def _canary_crons(settings: Settings) -> list[Any]:
    """The canaries' tick, every second (one worker a tick), when any agent has canaries."""
    policies = settings.canaries()
    if not policies:
        return []
    longest = max(lease_seconds(p, settings.warden_livekit_timeout_seconds) for p in policies)
    return [cron(timed_job(canaries), second=set(range(60)), unique=True, timeout=longest)]


def _liveness_crons(settings: Settings) -> list[Any]:
    """The agents' state looked at (`WARDEN_LIVENESS_SECONDS`; 0: never, but at checks and reconciliation)."""
    if not settings.warden_liveness_seconds:
        return []
    every = set(range(0, 60, LIVENESS_TICK_SECONDS))
    return [cron(timed_job(liveness), second=every, unique=True)]


def worker_settings(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for `arq.Worker`, built from validated settings."""
    functions = [
        func(_job(APPLY_WEBHOOK, apply_webhook), name=APPLY_WEBHOOK, max_tries=MAX_TRIES),
        func(_job(ON_DEADLINE, on_deadline), name=ON_DEADLINE, max_tries=MAX_TRIES, keep_result=0),
        func(_job(HEARTBEAT, heartbeat), name=HEARTBEAT, max_tries=MAX_TRIES),
        *(
            func(
                _job(name, report_to_incident),
                name=name,
                max_tries=MAX_TRIES,
                timeout=INCIDENT_REPORT_TIMEOUT_SECONDS,
            )
            for name in (REPORT_TO_INCIDENT, ESCALATE)  # ESCALATE: jobs queued before issue 22
        ),
        # no result kept: the same request may be queued again once this one is applied
        func(
            _job(OPERATOR_ACTION, operator_action),
            name=OPERATOR_ACTION,
            max_tries=MAX_TRIES,
            timeout=INCIDENT_REPORT_TIMEOUT_SECONDS,
            keep_result=0,
        ),
    ]
    return {
        "functions": functions,
        "cron_jobs": [
            cron(
                timed_job(sweep), second=set(range(0, 60, settings.warden_sweep_seconds)), run_at_startup=True
            ),
            cron(timed_job(reconcile), **settings.reconcile_schedule(), unique=True),  # type: ignore[arg-type]
            # rooms with people that expect no agent yet: a later dispatch is learned
            cron(timed_job(discover), second=set(range(0, 60, DISCOVER_TICK_SECONDS)), unique=True),
            cron(timed_job(prune), second={7, 22, 37, 52}, unique=True, run_at_startup=True),  # retention
            *_canary_crons(settings),
            *_liveness_crons(settings),
        ],
        "queue_name": settings.warden_queue_name,
        "redis_settings": settings.arq_redis(),
        "on_startup": functools.partial(startup, settings=settings, runs=[f.name for f in functions]),
        "on_shutdown": shutdown,
        "job_timeout": JOB_TIMEOUT_SECONDS,
        "poll_delay": 0.01,
        "max_jobs": settings.warden_worker_concurrency,
        "unknown_function": _unknown_function,  # `ClaimingWorker`'s: kept as a dead letter, not dropped
    }

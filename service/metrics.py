"""`GET /metrics` for Prometheus: what the web process counts, and figures read at scrape time from
Redis and the database, which are the same whichever web process answers.

- `warden_webhooks_total{event,verdict}`: webhooks received, by type ('unknown' before verification).
- `warden_queue_lag_seconds`: how long the oldest job that is due has waited to be picked up (a job
  running is not waiting: its run time is not lag).
- `warden_queue_jobs{state}`: jobs in the queue, due now ('ready', waiting or running) or later
  ('deferred', SLA timers).
- `warden_rooms{phase}`, `warden_open_incidents`: from the database.
- `warden_dead_letters`: jobs that failed for good and have not been re-run (`warden dead-letters`).
The worker's own counters (jobs, durations, time to agent, breaches, re-dispatches, restarts, LiveKit
errors) are served by each worker on `WARDEN_WORKER_METRICS_PORT` (see `workers.jobs.runtime.metrics`).

Counts only, no room names or secrets, so it is served without the API's authentication (restrict it
at the network if that matters to you).
"""

from __future__ import annotations

import logging
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, generate_latest
from redis.exceptions import RedisError
from sqlalchemy.exc import SQLAlchemyError
from starlette.requests import Request
from starlette.responses import Response

from workers.core.room import ROOM_STATES
from workers.queue.depth import queue_depth
from workers.store.dead_letters import waiting_count
from workers.store.stats import open_incident_count, phase_counts

log = logging.getLogger("warden.web")

WEBHOOKS = Counter(
    "warden_webhooks_total",
    "LiveKit webhooks received, by event type ('unknown' before verification) and verdict",
    ["event", "verdict"],
)
QUEUE_LAG = Gauge("warden_queue_lag_seconds", "How long the oldest due job has waited for a worker")
QUEUE_JOBS = Gauge("warden_queue_jobs", "Jobs in the queue: due now (ready) or later (deferred)", ["state"])
ROOMS = Gauge("warden_rooms", "Rooms Warden knows, by phase", ["phase"])
OPEN_INCIDENTS = Gauge("warden_open_incidents", "Outages not yet resolved")
DEAD_LETTERS = Gauge("warden_dead_letters", "Jobs that failed for good and have not been re-run")


_WEBHOOK_COUNTERS: dict[tuple[str, str], Any] = {}


def count_webhook(event: str, verdict: str) -> None:
    counter = _WEBHOOK_COUNTERS.get((event, verdict))
    if counter is None:  # labels() takes a lock and validates on every call: once per pair is enough
        counter = _WEBHOOK_COUNTERS[(event, verdict)] = WEBHOOKS.labels(event=event, verdict=verdict)
    counter.inc()


async def metrics_endpoint(request: Request) -> Response:
    state = request.state
    try:
        depth = await queue_depth(state.queue, state.settings.warden_queue_name)
        QUEUE_JOBS.labels(state="ready").set(depth.ready)
        QUEUE_JOBS.labels(state="deferred").set(depth.deferred)
        QUEUE_LAG.set(depth.lag_seconds)
    except (RedisError, OSError) as exc:
        log.warning("metrics: Redis unavailable (%s); queue figures not updated", type(exc).__name__)
    try:
        counts = await phase_counts(state.engine)
        for phase in {*ROOM_STATES, *counts}:  # a phase no room is in now reads 0, not its last
            ROOMS.labels(phase=phase).set(counts.get(phase, 0))
        OPEN_INCIDENTS.set(await open_incident_count(state.engine))
        DEAD_LETTERS.set(await waiting_count(state.engine))
    except (SQLAlchemyError, OSError) as exc:
        log.warning("metrics: database unavailable (%s); room figures not updated", type(exc).__name__)
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

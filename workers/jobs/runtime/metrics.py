"""The worker's Prometheus metrics, served by the worker itself on `WARDEN_WORKER_METRICS_PORT`.

Counters live in each worker process (Prometheus adds them up across the processes it scrapes); the
web process's `/metrics` adds figures read from the database and Redis, which are the same whichever
process answers (see `service.metrics`)."""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Sequence
from typing import Any, ParamSpec, TypeVar
from wsgiref.simple_server import WSGIServer

from arq.worker import Retry
from prometheus_client import Counter, Histogram, start_http_server

from workers.core import sli
from workers.core.events import Event, EventKind
from workers.core.observing import mode
from workers.core.room import AgentView, Recovery, ReportBreach, Room, time_to_agent
from workers.escalation.metrics import DECISIONS

log = logging.getLogger("warden.metrics")
P = ParamSpec("P")
T = TypeVar("T")

JOBS = Counter(
    "warden_jobs_total", "ARQ jobs run by this worker, by function and outcome", ["function", "outcome"]
)
JOB_SECONDS = Histogram(
    "warden_job_duration_seconds",
    "How long ARQ jobs took, by function",
    ["function"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
TIME_TO_AGENT = Histogram(
    "warden_time_to_agent_seconds",
    "From the first person's arrival to the agent's, per room and expected agent",
    ["agent"],
    buckets=(1, 2, 5, 10, 15, 20, 30, 60, 120, 300, 600),
)
BREACHES = Counter(
    "warden_sla_breaches_total", "Rooms that missed an SLA, by kind and agent", ["kind", "agent"]
)
REDISPATCHES = Counter(
    "warden_redispatches_total",
    "Re-dispatches asked of LiveKit, by outcome (dispatched, refused) and agent",
    ["outcome", "agent"],
)
PRUNED = Counter("warden_pruned_total", "Rows deleted by retention (WARDEN_RETENTION), by table", ["what"])
SLI_EVENTS = Counter(
    "warden_sli_events_total",
    "Rooms counted towards an expected agent's service levels (on_time, served), by outcome (good, bad)",
    ["agent", "sli", "outcome"],
)
LIVEKIT_ERRORS = Counter("warden_livekit_errors_total", "Failed LiveKit API calls, by error code", ["code"])


def breach_kind(breach: ReportBreach, view: AgentView) -> str:
    """What the room's people lived through: no agent ever, an agent that left, one that stalled, or
    one stuck in its state."""
    if breach.reason in ("stuck_initializing", "stuck_thinking"):
        return breach.reason  # its `lk.agent.state` stayed put (`workers.core.liveness`)
    if breach.reason == "active" or view.recovery is Recovery.EVICTING or view.evict:
        return "stalled"
    return "never_joined" if view.agent_joined_at is None else "left"


def serve(port: int, host: str) -> WSGIServer | None:
    """Serve this process's metrics on `host`:`port` (a daemon thread; `WARDEN_HOST`, as the web does:
    a worker told to stay on loopback must not open a port to the world); port 0 means not at all."""
    if not port:
        return None
    server, _ = start_http_server(port, addr=host)
    log.info("worker metrics on http://%s:%d/metrics", f"[{host}]" if ":" in host else host, port)
    return server


def count_livekit_error(code: str) -> None:
    """Count a failed LiveKit API call (the adapters' `on_error`)."""
    LIVEKIT_ERRORS.labels(code=code).inc()


def count_pruned(pruned: dict[str, int]) -> None:
    """Count the rows one retention run deleted, by table."""
    for what, count in pruned.items():
        PRUNED.labels(what=what).inc(count)


def start_sli_series(agents: Iterable[str]) -> None:
    """The service levels' series of the agents named in the settings, at 0 from the start: Prometheus'
    `rate` counts no increase into a series' first sample, so a series born at 1 would lose its room."""
    for agent in agents:
        for level in sli.SLIS:
            for outcome in (sli.GOOD, sli.BAD):
                SLI_EVENTS.labels(agent=agent, sli=level, outcome=outcome)


def count_outcomes(outcomes: Sequence[sli.Outcome]) -> None:
    """Count service levels' outcomes the store wrote first (`Recorded.counted`): each once, ever."""
    for outcome in outcomes:
        for level in sli.SLIS:
            SLI_EVENTS.labels(agent=outcome.agent, sli=level, outcome=outcome.outcome(level)).inc()


def timed_job(job: Callable[P, Awaitable[T]]) -> Callable[P, Coroutine[Any, Any, T]]:
    """Count a job function's runs by outcome (ok, retry, error) and time them."""
    name = job.__name__

    @functools.wraps(job)
    async def run(*args: P.args, **kwargs: P.kwargs) -> T:
        started = time.perf_counter()
        outcome = "error"
        try:
            result = await job(*args, **kwargs)
            outcome = "ok"
            return result
        except Retry:
            outcome = "retry"
            raise
        finally:
            JOBS.labels(function=name, outcome=outcome).inc()
            JOB_SECONDS.labels(function=name).observe(time.perf_counter() - started)

    return run


def observe_recorded(
    events: Sequence[Event],
    before: Room | None,
    after: Room | None,
    actions: Sequence[Any],
    *,
    observe: bool = False,
) -> None:
    """Count what one recording changed, by expected agent: its first arrival, breaches, re-dispatch
    outcomes (a re-dispatch observe mode did not make is none), and every decision with the mode."""
    for action in actions:
        DECISIONS.labels(action=type(action).__name__, mode=mode(observe)).inc()
    if after is None:
        return
    for view in after.views:
        waited = time_to_agent(after, view)
        was = before.view(view.agent) if before is not None else None
        if waited is not None and (was is None or was.agent_joined_at is None):
            TIME_TO_AGENT.labels(agent=view.agent).observe(waited)
    for action in actions:
        if isinstance(action, ReportBreach):
            view = after.view_for(action.agent)
            BREACHES.labels(kind=breach_kind(action, view), agent=view.agent).inc()
    for event in events:
        agent = event.fact.agent if event.fact is not None else ""
        if event.kind is EventKind.AGENT_DISPATCHED and event.fact is not None and event.fact.carried_out:
            REDISPATCHES.labels(outcome="dispatched", agent=agent).inc()
        elif event.kind is EventKind.UPSTREAM_FAILED:
            REDISPATCHES.labels(outcome="refused", agent=agent).inc()

"""The worker's start-up and shutdown: the adapters wired from settings, the database engine and the
`WorkerContext` every job reads (`workers.jobs.runtime.context`)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import httpx
from arq.connections import ArqRedis
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from workers.adapters.alert_routes import IncidentWebhook, Opsgenie, PagerDuty
from workers.adapters.cloud import Cloud, CloudAgents, agents_url
from workers.adapters.hooks import DeployHook, SlackAlerter
from workers.adapters.livekit import CanaryRooms, Dispatcher, LiveKitRooms, Presence, Protector
from workers.escalation.agents import FreshStart, Incidents
from workers.escalation.alert_routes import EventRoute
from workers.escalation.policy import Alerter, OutagePolicy, Restarter
from workers.jobs.canaries.runner import Canaries
from workers.jobs.delivery.outbox import Delivered
from workers.jobs.rooms.bulk import fresh_starts
from workers.jobs.rooms.effects import Effects
from workers.jobs.runtime.context import CONTEXT_KEY, WorkerContext, context
from workers.jobs.runtime.metrics import count_livekit_error
from workers.queue.advertised import advertising
from workers.queue.enqueue import Enqueuer, JobQueue
from workers.settings import Settings
from workers.store.engine import make_engine
from workers.store.group import GroupCommit

Closer = Callable[[], Awaitable[None]]


def outage_policy(settings: Settings) -> OutagePolicy:
    """When rooms' troubles are an outage, and how its incident calls out, as plain values."""
    return OutagePolicy(
        agent_name=settings.warden_agent_name,
        outage_rooms=settings.warden_outage_rooms,
        outage_window=settings.warden_outage_window_seconds,
        cooldown=settings.warden_restart_cooldown_seconds,
        restart_grace=settings.warden_restart_grace_seconds,
        rollback="rollback" in settings.warden_escalation.split(","),
        backoff=settings.warden_escalation_backoff_seconds,
        lease=settings.warden_claim_lease_seconds,
        retry_for=settings.warden_alert_retry_seconds,
        observe=settings.observing,
        observe_alerts=settings.warden_observe_alerts,
    )


def cloud_agents_url(settings: Settings) -> str:
    """Where LiveKit Cloud's agent API is: `LK_AGENTS_URL`, or derived from a *.livekit.cloud URL;
    empty when Warden does not run on LiveKit Cloud."""
    if settings.lk_agents_url:
        return settings.lk_agents_url
    host = settings.livekit_url.split("://", 1)[-1].split("/", 1)[0].split(":", 1)[0]
    if settings.warden_cloud_agent_id or host.endswith(".livekit.cloud"):
        return agents_url(settings.livekit_url)
    return ""


def alert_routes(settings: Settings, http: httpx.AsyncClient) -> dict[str, EventRoute]:
    """The alert routes beside Slack that are configured, by key."""
    routes: dict[str, EventRoute] = {}
    if key := settings.warden_pagerduty_routing_key.get_secret_value():
        routes["pagerduty"] = PagerDuty(http, key, settings.warden_pagerduty_url)
    if key := settings.warden_opsgenie_api_key.get_secret_value():
        routes["opsgenie"] = Opsgenie(http, key, settings.warden_opsgenie_url)
    if url := settings.warden_incident_webhook_url.get_secret_value():
        routes["webhook"] = IncidentWebhook(
            http, url, settings.warden_incident_webhook_secret.get_secret_value()
        )
    return routes


@dataclass(frozen=True)
class Adapters:
    """What the worker talks to beside its database: LiveKit (who is in a room, dispatch), LiveKit
    Cloud's agents, the deploy hook, the alert routes, the queue, and Redis itself (the incidents' outage
    window). `closers` are awaited at shutdown. Built from settings by `connect`; the jobs tier of the
    tests hands in in-memory ones meeting the same protocols."""

    presence: Presence
    dispatcher: Dispatcher
    cloud: Cloud | None
    hook: Restarter | None
    alerter: Alerter | None
    alert_routes: dict[str, EventRoute]
    http: httpx.AsyncClient  # the deploy hooks that rules name are called with it
    queue: JobQueue
    redis: Redis
    closers: tuple[Closer, ...] = ()
    canary_rooms: CanaryRooms | None = None  # None: no canaries (a test's adapters may have none)
    protector: Protector | None = None  # transfers and data messages (issue 27); None: none made


def connect(settings: Settings, redis: ArqRedis) -> Adapters:
    """The adapters, from settings: LiveKit rooms and dispatch, Cloud agents, deploy hook, alerts, the
    queue on ARQ's `redis`."""
    key, secret = settings.primary_key()
    livekit = LiveKitRooms(
        settings.livekit_url,
        key,
        secret,
        timeout=settings.warden_livekit_timeout_seconds,
        on_error=count_livekit_error,
    )
    http = httpx.AsyncClient(
        timeout=3.0
    )  # an incident report must fit in one job (retry.JOB_TIMEOUT_SECONDS)
    closers: list[Closer] = [livekit.aclose, http.aclose]
    cloud = None
    url = cloud_agents_url(settings)
    if url:
        cloud = CloudAgents(
            url, key, secret, agent_id=settings.warden_cloud_agent_id, on_error=count_livekit_error
        )
        closers.append(cloud.aclose)
    hook_url = settings.warden_deploy_hook_url.get_secret_value()
    hook = (
        DeployHook(http, hook_url, settings.warden_deploy_hook_secret.get_secret_value())
        if hook_url
        else None
    )
    alert_url = settings.warden_alert_webhook_url.get_secret_value()
    if cloud is None and any(r.cloud_agent_id for r in settings.rule_list):
        cloud = CloudAgents(agents_url(settings.livekit_url), key, secret, on_error=count_livekit_error)
        closers.append(cloud.aclose)
    return Adapters(
        presence=livekit,
        dispatcher=livekit,
        protector=livekit,
        cloud=cloud,
        hook=hook,
        alerter=SlackAlerter(http, alert_url) if alert_url else None,
        alert_routes=alert_routes(settings, http),
        http=http,
        # one round trip, where enqueue_job takes four
        queue=Enqueuer(redis, settings.warden_queue_name, room_spacing_ms=settings.room_spacing_ms),
        redis=redis,
        closers=tuple(closers),
        canary_rooms=livekit,
    )


def build_incidents(
    settings: Settings,
    engine: AsyncEngine,
    adapters: Adapters,
    *,
    clock: Callable[[], float],
    fresh_start: FreshStart,
) -> Incidents:
    """The agents' incidents, over the adapters they call out with."""
    return Incidents(
        engine=engine,
        redis=adapters.redis,
        policy=outage_policy(settings),
        rules=settings.rules(),
        cloud=adapters.cloud,
        hook=adapters.hook,
        hook_url=settings.warden_deploy_hook_url.get_secret_value(),
        hook_secret=settings.warden_deploy_hook_secret.get_secret_value(),
        http=adapters.http,
        alerter=adapters.alerter,
        clock=clock,
        fresh_start=fresh_start,
        alert_routes=adapters.alert_routes,
    )


async def startup(
    ctx: dict[str, Any],
    *,
    settings: Settings,
    clock: Callable[[], float] = time.time,
    effects: Effects | None = None,
    adapters: Callable[[Settings, ArqRedis], Adapters] = connect,
    runs: Sequence[str] = (),
) -> None:
    """ARQ's on_startup: open the database and the adapters, and keep the worker's context in `ctx`;
    say in Redis that this worker runs the job functions `runs` until it stops
    (`workers.queue.advertised`). Tests may hand in their own `clock`, and their own `adapters` (built
    from the settings and ARQ's Redis) or whole `effects` (which they close)."""
    engine = make_engine(settings.database_url)
    rules = settings.rules()
    closers: tuple[Closer, ...] = ()
    canaries = None
    if effects is None:
        outside = adapters(settings, ctx["redis"])
        closers = outside.closers
        incidents = build_incidents(
            settings,
            engine,
            outside,
            clock=clock,
            fresh_start=lambda rooms, incident, agent, wait, *, observed=False: fresh_starts(
                ctx, rooms, incident, agent, wait, observed=observed
            ),
        )
        effects = Effects(
            presence=outside.presence,
            dispatcher=outside.dispatcher,
            enqueuer=outside.queue,
            incidents=incidents,
            clock=clock,
            protector=outside.protector,
            rules=rules,
        )
        if outside.canary_rooms is not None and settings.canaries():
            canaries = Canaries(
                engine=engine,
                redis=outside.redis,
                rooms=outside.canary_rooms,
                reports=incidents,
                policies=settings.canaries(),
                clock=clock,
                call_timeout=settings.warden_livekit_timeout_seconds,
            )
    if runs:
        closers = (
            *closers,
            _stopped(asyncio.create_task(advertising(ctx["redis"], settings.warden_queue_name, runs))),
        )
    ctx[CONTEXT_KEY] = WorkerContext(
        settings=settings,
        engine=engine,
        rules=rules,
        committer=GroupCommit(engine, rules),
        effects=effects,
        delivered=Delivered(engine),
        closers=closers,
        canaries=canaries,
    )


async def shutdown(ctx: dict[str, Any]) -> None:
    """ARQ's on_shutdown: close the adapters, then the database engine."""
    worker = context(ctx)
    await worker.delivered.close()
    for close in worker.closers:
        await close()
    await worker.engine.dispose()


def _stopped(task: asyncio.Task[None]) -> Closer:
    async def stop() -> None:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    return stop

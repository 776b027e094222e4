"""The Starlette application: webhook intake, health checks, the operator API and the dashboard.

`create_app(settings)` builds it; the lifespan opens the queue (a lazy Redis pool: the web process
starts even while Redis is down, and answers 503 until it is back) and the database engine, and
hands them to handlers as typed request state.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from typing import TypedDict

from arq.connections import ArqRedis
from redis.asyncio import ConnectionPool
from redis.exceptions import RedisError
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from service.api.canaries import get_canaries
from service.api.dead_letters import get_dead_letters, retry_dead_letter
from service.api.incidents import get_incidents, get_one_incident
from service.api.maintenance import delete_maintenance, get_maintenance, post_maintenance
from service.api.openapi import get_openapi
from service.api.operator import ack_incident, redispatch_agent, restart_incident
from service.api.rooms import get_room, get_rooms
from service.api.slo import get_slo
from service.body_reading import BodyDeadline
from service.concurrency import ConcurrencyLimit, RequestCount
from service.dashboard.canaries import canaries_page
from service.dashboard.dead_letters import dead_letters_page
from service.dashboard.maintenance import end_maintenance_form, maintenance_page, start_maintenance_form
from service.dashboard.operator import ack_form, redispatch_form, restart_form
from service.dashboard.pages import STATIC, incidents_page, room_page, rooms_page
from service.dashboard.slo import slo_agent_page, slo_page
from service.direct_route import DirectRoute
from service.intake.heartbeat import post_heartbeat
from service.intake.webhook import WebhookEndpoint, WebhookVerifier
from service.metrics import metrics_endpoint
from workers.queue.enqueue import Enqueuer
from workers.queue.packing import packed_by_hiredis
from workers.settings import Settings, load_settings
from workers.store.engine import make_engine
from workers.store.queries import ping

log = logging.getLogger("warden.web")

REDIS_TIMEOUT_SECONDS = 2.0


class State(TypedDict):
    settings: Settings
    verifier: WebhookVerifier
    queue: ArqRedis
    enqueuer: Enqueuer
    engine: AsyncEngine


def open_queue(settings: Settings) -> ArqRedis:
    """An ARQ client on a lazy pool with short timeouts: a hung Redis costs 2 s, not LiveKit's patience;
    its commands packed in C (`workers.queue.packing`: the enqueue's largest cost in Python)."""
    pool = packed_by_hiredis(
        ConnectionPool.from_url(
            settings.redis_url,
            socket_timeout=REDIS_TIMEOUT_SECONDS,
            socket_connect_timeout=REDIS_TIMEOUT_SECONDS,
            **settings.redis_pool_options(),
        )
    )
    return ArqRedis(connection_pool=pool, default_queue_name=settings.warden_queue_name)


async def healthz(request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> JSONResponse:
    checks: dict[str, str] = {}
    try:
        await request.state.queue.ping()
        checks["redis"] = "ok"
    except (RedisError, OSError, TimeoutError) as exc:
        checks["redis"] = f"unreachable ({type(exc).__name__})"
    try:
        await ping(request.state.engine)
        checks["database"] = "ok"
    except (SQLAlchemyError, OSError) as exc:
        checks["database"] = f"unreachable ({type(exc).__name__})"
    ready = all(v == "ok" for v in checks.values())
    return JSONResponse(
        {"status": "ready" if ready else "not ready", **checks}, status_code=200 if ready else 503
    )


async def database_unavailable(request: Request, exc: Exception) -> JSONResponse:
    """The API's and the dashboard's answer when the database fails: 503 (retry later), as the OpenAPI
    description promises, not a 500 with a traceback."""
    log.error("database error on %s: %s", request.url.path, type(exc).__name__)
    return JSONResponse({"error": "database unavailable, retry later"}, status_code=503)


def create_app(settings: Settings | None = None) -> Starlette:
    """Build the app; settings are loaded from the environment when not given."""
    settings = settings or load_settings()

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[State]:
        if not settings.access_tokens:
            log.warning(
                "neither WARDEN_TOKENS nor WARDEN_ADMIN_TOKEN is set: the API and the dashboard answer "
                "loopback clients only, and no request that came through a proxy"
            )
        queue = open_queue(settings)
        engine = make_engine(settings.database_url)
        try:
            yield {
                "settings": settings,
                "verifier": WebhookVerifier(settings.api_keys),
                "queue": queue,
                "enqueuer": Enqueuer(
                    queue, settings.warden_queue_name, room_spacing_ms=settings.room_spacing_ms
                ),
                "engine": engine,
            }
        finally:
            await queue.aclose()
            await queue.connection_pool.disconnect()  # the client does not own a pool it was handed
            await engine.dispose()

    webhook = WebhookEndpoint()
    count = RequestCount(settings.warden_web_concurrency)  # one limit for the webhook and every other route
    timeout = settings.warden_body_timeout_seconds
    return Starlette(
        routes=[
            Route("/webhook", webhook, methods=["POST"]),
            Route("/healthz", healthz),
            Route("/readyz", readyz),
            Route("/metrics", metrics_endpoint),
            Route("/api/rooms", get_rooms),
            Route("/api/rooms/{name}", get_room),
            Route("/api/rooms/{name}/heartbeat", post_heartbeat, methods=["POST"]),
            Route("/api/rooms/{name}/redispatch", redispatch_agent, methods=["POST"]),
            Route("/api/incidents", get_incidents),
            Route("/api/incidents/{id}", get_one_incident),
            Route("/api/incidents/{id}/ack", ack_incident, methods=["POST"]),
            Route("/api/incidents/{id}/restart", restart_incident, methods=["POST"]),
            Route("/api/dead-letters", get_dead_letters),
            Route("/api/dead-letters/{id:path}/retry", retry_dead_letter, methods=["POST"]),
            Route("/api/canaries", get_canaries),
            Route("/api/slo", get_slo),
            Route("/api/maintenance", get_maintenance),
            Route("/api/maintenance", post_maintenance, methods=["POST"]),
            Route("/api/maintenance/{id}", delete_maintenance, methods=["DELETE"]),
            Route("/api/openapi.json", get_openapi),
            Route("/", rooms_page),
            Route("/rooms/{name}/redispatch", redispatch_form, methods=["POST"]),
            Route("/rooms/{name:path}", room_page),
            Route("/incidents", incidents_page),
            Route("/incidents/{id}/ack", ack_form, methods=["POST"]),
            Route("/incidents/{id}/restart", restart_form, methods=["POST"]),
            Route("/dead-letters", dead_letters_page),
            Route("/canaries", canaries_page),
            Route("/slo", slo_page),
            Route("/slo/{agent}", slo_agent_page),
            Route("/maintenance", maintenance_page),
            Route("/maintenance", start_maintenance_form, methods=["POST"]),
            Route("/maintenance/{id}/end", end_maintenance_form, methods=["POST"]),
            Mount("/static", StaticFiles(directory=STATIC), name="static"),
        ],
        lifespan=lifespan,
        middleware=[
            # the hot path first, in one layer: the limit, the body deadline, the endpoint
            Middleware(
                DirectRoute, path="/webhook", method="POST", endpoint=webhook, count=count, timeout=timeout
            ),
            Middleware(ConcurrencyLimit, count=count),
            Middleware(BodyDeadline, timeout=timeout),
        ],
        # SQLAlchemy wraps what the driver reports (asyncpg's "starting up", a connection lost mid-query),
        # but not what the socket does before a session exists: a refused or reset connection, a timeout
        # reach the handlers as OSError (TimeoutError is one). Redis' errors are not OSErrors, and each
        # route that queues answers its own 503 for them.
        exception_handlers={SQLAlchemyError: database_unavailable, OSError: database_unavailable},
    )

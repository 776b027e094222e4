"""The database down: every API route and dashboard page answers 503 (retry later) with the body the
OpenAPI description promises, never a 500 with a traceback. Down as PostgreSQL is when its port refuses
connections (stopped), when it drops them as soon as they are made (shutting down), or when it is there
but refuses to start a session ("the database system is starting up", for a moment during
`pg_ctl restart`)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
import schemathesis

from devtools.simulator.serving import serve
from service.api.openapi import description
from service.app import create_app
from tests.support.pg_standin import STARTING_UP, cannot_connect_now, resetting, stopped
from tests.support.settings import make_settings

UNAVAILABLE = {"error": "database unavailable, retry later"}
API = [
    ("GET", "/api/rooms", "/api/rooms"),
    ("GET", "/api/rooms/{name}", "/api/rooms/call-1"),
    ("GET", "/api/incidents", "/api/incidents"),
    ("GET", "/api/incidents/{id}", "/api/incidents/IN_1"),
    ("GET", "/api/dead-letters", "/api/dead-letters"),
    ("POST", "/api/dead-letters/{id}/retry", "/api/dead-letters/webhook:EV_1/retry"),
    ("GET", "/api/canaries", "/api/canaries"),
    ("GET", "/api/slo", "/api/slo"),
    ("GET", "/api/maintenance", "/api/maintenance"),
    ("POST", "/api/maintenance", "/api/maintenance"),
    ("DELETE", "/api/maintenance/{id}", "/api/maintenance/1"),
    ("POST", "/api/incidents/{id}/ack", "/api/incidents/IN_1/ack"),
    ("POST", "/api/incidents/{id}/restart", "/api/incidents/IN_1/restart"),
    ("POST", "/api/rooms/{name}/redispatch", "/api/rooms/call-1/redispatch"),
]
# What a POST carries, so that it reaches the database (a bad body is refused before it).
BODIES = {
    "/api/maintenance": {"agent": "notetaker", "minutes": 30, "reason": "deploying"},
    "/api/rooms/call-1/redispatch": {"agent": "notetaker"},
}
PAGES = ["/", "/rooms/call-1", "/incidents", "/dead-letters", "/canaries"]
PAGES += ["/slo", "/slo/notetaker", "/maintenance"]
# The dashboard's forms: (path, form fields).
FORMS = [
    ("/maintenance", {"agent": "notetaker", "minutes": "30", "reason": "deploying"}),
    ("/maintenance/1/end", {}),
    ("/incidents/IN_1/ack", {}),
    ("/incidents/IN_1/restart", {}),
    ("/rooms/call-1/redispatch", {"agent": "notetaker"}),
]
# Routes that read no database: the webhook and the heartbeat only queue, the rest answer without it.
NO_DATABASE = {"/webhook", "/healthz", "/readyz", "/metrics", "/static", "/api/openapi.json"}
NO_DATABASE |= {"/api/rooms/{name}/heartbeat"}


@pytest.fixture
async def refusing_port() -> AsyncIterator[int]:
    """A loopback port bound by nobody listening: every connection to it is refused."""
    async with stopped() as port:
        yield port


@pytest.fixture
async def resetting_port() -> AsyncIterator[int]:
    """A loopback port that accepts each connection and drops it at once."""
    async with resetting() as port:
        yield port


@pytest.fixture
async def starting_up_port() -> AsyncIterator[int]:
    """A stand-in PostgreSQL that answers every session's start-up as a server still starting does:
    SQLSTATE 57P03, "the database system is starting up"."""
    async with cannot_connect_now(STARTING_UP) as port:
        yield port


@pytest.fixture(params=["refusing", "resetting", "starting_up"])
def down_url(request: pytest.FixtureRequest) -> str:
    port = request.getfixturevalue(f"{request.param}_port")
    return f"postgresql://postgres@127.0.0.1:{port}/warden"


async def test_every_route_answers_503_with_the_described_body_while_the_database_is_down(
    down_url: str, redis_url: str
) -> None:
    schema = schemathesis.openapi.from_dict(description())
    settings = make_settings(database_url=down_url, redis_url=redis_url)
    async with serve(create_app(settings)) as url, httpx.AsyncClient(base_url=url, timeout=30) as client:
        for method, template, path in API:
            response = await client.request(method, path, json=BODIES.get(path))
            assert (response.status_code, response.json()) == (503, UNAVAILABLE), path
            schema[template][method].validate_response(response)
        for path in PAGES:
            response = await client.get(path)
            assert (response.status_code, response.json()) == (503, UNAVAILABLE), path
        for path, fields in FORMS:
            response = await client.post(path, data=fields)
            assert (response.status_code, response.json()) == (503, UNAVAILABLE), path
        ready = await client.get("/readyz")
        assert ready.status_code == 503 and ready.json()["database"].startswith("unreachable")


def test_every_route_that_reads_the_database_is_asked_above() -> None:
    routes = {getattr(route, "path", "") for route in create_app(make_settings()).routes}
    asked = {template.replace("letters/{id}/", "letters/{id:path}/") for _, template, _ in API}
    asked |= {"/", "/rooms/{name:path}", "/incidents", "/dead-letters", "/canaries", "/slo", "/slo/{agent}"}
    asked |= {"/maintenance", "/maintenance/{id}/end", "/incidents/{id}/ack", "/incidents/{id}/restart"}
    asked |= {"/rooms/{name}/redispatch"}
    assert routes - NO_DATABASE == asked

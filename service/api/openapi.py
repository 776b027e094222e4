"""`GET /api/openapi.json`: the OpenAPI 3.1 description of every `/api/*` route, under the API's own
access rules. Built here from the same enums the API answers with; the objects' schemas are in
`service.api.openapi_schemas`. `tests/component/test_openapi.py` runs schemathesis against a live
instance to keep it true."""

from __future__ import annotations

import json
from functools import cache
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from service.api import openapi_maintenance
from service.api.auth import admin_only
from service.api.openapi_schemas import SCHEMAS, Schema, ref
from workers.core.room import ROOM_STATES

JSON = "application/json"
ADMIN: list[dict[str, list[str]]] = [{"bearerToken": []}, {"basicAuth": []}]
OPERATOR_ONLY = (
    "Operators only (a `viewer`'s token gets 403), and never from another site's page: a request whose "
    "`Sec-Fetch-Site` is not `same-origin` or `none`, or whose `Origin` is not this Warden's, gets 403 "
    "whatever its credentials."
)
DESCRIPTION = """Warden's operator API: rooms with their timelines, incidents, dead letters, canaries,
service levels, maintenance windows, and agents' heartbeats; and what operators do by hand: acknowledge
an incident, restart its deployment, re-dispatch a room's agent (each queued for the worker, recorded
with the operator's name).

Access: with a token of `WARDEN_TOKENS` (`name:role:token` entries) or `WARDEN_ADMIN_TOKEN` (the
operator named `admin`), as a bearer token or as the password of HTTP Basic auth (any user name); 401
without one, or with a wrong one. Roles: a `viewer` reads (every GET), an `operator` also changes
something (every POST and DELETE); a viewer's POST or DELETE gets 403, and nothing changes. What an
operator does is recorded under its token's name (`by`, `retried_by`), never the token. A POST or
DELETE from another site's page (`Sec-Fetch-Site` other than `same-origin` or `none`, or an `Origin`
that is not this Warden's) gets 403 whatever its credentials, since a browser sends Basic credentials
along by itself; a client that sends neither header (curl, the CLI) is not refused for it.

When no token is set, the API answers loopback clients only, and only when they reach it directly (403
to others, and to any request carrying a forwarding header such as `X-Forwarded-For`, `X-Real-IP`,
`Forwarded` or `Via`), as the operator named `loopback`, and asks for no credentials. The heartbeat
takes a LiveKit access token for its room instead (or `WARDEN_ADMIN_TOKEN`).
Any route answers 503 while the database (or, where it queues, Redis) is unavailable: retry later.

Objects may gain fields: clients should ignore the ones they do not know."""


def _response(description: str, schema: Schema) -> Schema:
    return {"description": description, "content": {JSON: {"schema": schema}}}


def _error(description: str) -> Schema:
    return _response(description, ref("Error"))


def _errors(*codes: int) -> dict[str, Schema]:
    """The error responses every admin route can give, plus `codes`."""
    known = {
        400: "a query parameter or the body is not valid",
        401: "a token is set (WARDEN_TOKENS, WARDEN_ADMIN_TOKEN) and the request carries none of them",
        403: "no token is set and the client is not on loopback; for a POST or DELETE, also a viewer's "
        "token, or a request from another site's page (Origin, Sec-Fetch-Site)",
        404: "there is no such thing",
        409: "it was re-run already",
        503: "the database or Redis is unavailable; retry later",
    }
    return {str(code): _error(known[code]) for code in sorted({401, 403, 503, *codes})}


def _int_query(name: str, default: int, low: int, high: int, description: str) -> Schema:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "schema": {"type": "integer", "minimum": low, "maximum": high, "default": default},
    }


def _path(name: str, description: str, *, single: bool = True) -> Schema:
    """A path parameter; `single`: one path segment (no `/`), as Starlette's `{name}` matches."""
    return {
        "name": name,
        "in": "path",
        "required": True,
        "description": description,
        "schema": {"type": "string", "minLength": 1, **({"pattern": "^[^/]+$"} if single else {})},
    }


def _get(operation_id: str, summary: str, ok: Schema, parameters: list[Schema], *errors: int) -> Schema:
    return {
        "get": {
            "operationId": operation_id,
            "summary": summary,
            "security": ADMIN,
            "parameters": parameters,
            "responses": {"200": ok, **_errors(*errors)},
        }
    }


def _operator_post(
    operation_id: str,
    summary: str,
    description: str,
    parameters: list[Schema],
    conflict: str = "Error",
    *errors: int,
) -> Schema:
    """An operator action (issue 28): queued for the worker (202), refused as the state stands (409)."""
    return {
        "post": {
            "operationId": operation_id,
            "summary": summary,
            "description": description + " Needs an operator's token; a viewer's gets 403.",
            "security": ADMIN,
            "parameters": parameters,
            "responses": {
                "202": _response("queued for the worker", ref("OperatorQueued")),
                **_errors(404, *errors),
                "409": _response("refused as things stand (the error says why)", ref(conflict)),
                "503": _error(
                    "the database or Redis is unavailable, or no running worker applies operators' "
                    "requests (none is up, or it runs an older release: upgrade it first); nothing was "
                    "queued, retry later"
                ),
            },
        }
    }


OFFSET = _int_query("offset", 0, 0, 10**9, "how many to skip")


def _paths() -> dict[str, Schema]:
    return {
        "/api/rooms": _get(
            "listRooms",
            "Rooms, newest first",
            _response("a page of rooms", ref("RoomPage")),
            [
                _int_query("limit", 50, 1, 200, "rooms per page"),
                OFFSET,
                {
                    "name": "state",
                    "in": "query",
                    "required": False,
                    "description": "only rooms in this phase",
                    "schema": {"type": "string", "enum": list(ROOM_STATES)},
                },
            ],
            400,
        ),
        "/api/rooms/{name}": _get(
            "getRoom",
            "One room with its timeline",
            _response("the room", ref("RoomDetail")),
            [_path("name", "the room's name")],
            404,
        ),
        "/api/rooms/{name}/heartbeat": {
            "post": {
                "operationId": "postHeartbeat",
                "summary": "An agent says it is working (activity for the stalled-agent check)",
                "description": "With a LiveKit access token for this room (its subject is the agent's "
                'identity), or with WARDEN_ADMIN_TOKEN and `{"identity": …}` in the body (not a '
                "WARDEN_TOKENS token: this is an agent's route).",
                "security": [{"livekitToken": []}, {"bearerToken": []}],
                "parameters": [_path("name", "the room's name")],
                "requestBody": {
                    "required": False,
                    "content": {
                        JSON: {
                            "schema": {
                                "type": "object",
                                "properties": {"identity": {"type": "string", "minLength": 1}},
                            }
                        }
                    },
                },
                "responses": {
                    "202": _response("queued for the worker", ref("HeartbeatQueued")),
                    "400": _error("the admin token was given without an identity"),
                    "401": _error("no valid LiveKit token (nor the admin token)"),
                    "403": _error("the token does not name this room and an identity"),
                    "503": _error("Redis is unavailable; retry later"),
                },
            }
        },
        "/api/incidents": _get(
            "listIncidents",
            "Incidents, newest first",
            _response("a page of incidents", ref("IncidentPage")),
            [_int_query("limit", 50, 1, 200, "incidents per page"), OFFSET],
            400,
        ),
        "/api/incidents/{id}": _get(
            "getIncident",
            "One incident with its rooms and actions",
            _response("the incident", ref("IncidentDetail")),
            [_path("id", "the incident's id")],
            404,
        ),
        "/api/incidents/{id}/ack": _operator_post(
            "acknowledgeIncident",
            "Acknowledge an open incident: no more follow-up alerts",
            "Sends PagerDuty's `acknowledge` (the trigger's `dedup_key`) and Opsgenie's acknowledge "
            "(by its alias), and notes who did it. 409 once acknowledged, or resolved.",
            [_path("id", "the incident's id")],
        ),
        "/api/incidents/{id}/restart": _operator_post(
            "restartIncident",
            "Restart the incident's deployment now (Cloud restart or deploy hook)",
            "The deployment's cooldown still applies: 409 with `cooldown_ends`. 409 too when it is "
            "resolved, has nothing to restart, or a restart or rollback is under way.",
            [_path("id", "the incident's id")],
            "RestartRefused",
        ),
        "/api/rooms/{name}/redispatch": {
            "post": {
                **_operator_post(
                    "redispatchAgent",
                    "Re-dispatch one expected agent of the room now, with Warden's own safety",
                    "Warden asks LiveKit first and re-dispatches as its own checks do. 404 for an "
                    "agent the room does not expect; 409 when an agent of that name is in the room, "
                    "nobody waits for it, a re-dispatch is under way, or a dispatch for it is younger "
                    "than its grace (10 s).",
                    [_path("name", "the room's name")],
                    "Error",
                    400,
                )["post"],
                "requestBody": {
                    "required": True,
                    "content": {
                        JSON: {
                            "schema": {
                                "type": "object",
                                "properties": {"agent": {"type": "string", "minLength": 1}},
                                "required": ["agent"],
                            }
                        }
                    },
                },
            }
        },
        "/api/dead-letters": _get(
            "listDeadLetters",
            "Jobs that failed for good, newest first",
            _response("the dead letters", ref("DeadLetters")),
            [_int_query("limit", 100, 1, 500, "how many")],
            400,
        ),
        "/api/dead-letters/{id}/retry": {
            "post": {
                "operationId": "retryDeadLetter",
                "summary": "Queue a dead letter's job again, once",
                "description": f"{OPERATOR_ONLY} The re-run is recorded with the operator's name "
                "(`retried_by`).",
                "security": ADMIN,
                "parameters": [_path("id", "the dead letter's id (its job's id)", single=False)],
                "responses": {
                    "200": _response("queued again", ref("Retried")),
                    **_errors(404, 409),
                },
            }
        },
        "/api/canaries": _get(
            "listCanaries",
            "Each agent's canaries: terms, failures in a row, last success and latest runs",
            _response("the agents with canaries configured or on record", ref("Canaries")),
            [_int_query("limit", 20, 1, 200, "runs per agent, newest first")],
            400,
        ),
        "/api/slo": _get(
            "getServiceLevels",
            "Each agent's service levels over WARDEN_SLO_WINDOW: on time, served, budget left, burn rate",
            _response("the configured agents, then others with outcomes in the window", ref("ServiceLevels")),
            [],
        ),
        **openapi_maintenance.PATHS,
        "/api/openapi.json": _get(
            "getOpenAPI",
            "This description",
            _response("the OpenAPI 3.1 description", {"type": "object"}),
            [],
        ),
    }


@cache
def description() -> dict[str, Any]:
    """The whole OpenAPI document."""
    return {
        "openapi": "3.1.0",
        "info": {"title": "Warden", "version": "1", "description": DESCRIPTION},
        "paths": _paths(),
        "components": {
            "schemas": SCHEMAS | openapi_maintenance.SCHEMAS,
            "securitySchemes": {
                "bearerToken": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "a token of WARDEN_TOKENS (a viewer's or an operator's) or "
                    "WARDEN_ADMIN_TOKEN (the operator named admin)",
                },
                "basicAuth": {
                    "type": "http",
                    "scheme": "basic",
                    "description": "any user name, and as the password a token of WARDEN_TOKENS or "
                    "WARDEN_ADMIN_TOKEN",
                },
                "livekitToken": {
                    "type": "http",
                    "scheme": "bearer",
                    "bearerFormat": "JWT",
                    "description": "a LiveKit access token for the room, signed with one of Warden's keys",
                },
            },
        },
    }


@cache
def _body() -> bytes:
    return json.dumps(description(), indent=1).encode()


@admin_only
async def get_openapi(request: Request) -> Response:
    return Response(_body(), media_type=JSON)

"""The OpenAPI description of the maintenance windows routes (`service.api.maintenance`): their paths
and their objects' schemas, merged into `service.api.openapi`'s document."""

from __future__ import annotations

from service.api.maintenance import MAX_BODY, MINUTES
from service.api.openapi_schemas import MAYBE_TIME, STRING, TIME, Schema, obj, ref
from workers.core import bounds
from workers.store.maintenance import REASON_CHARS

JSON = "application/json"
ADMIN: list[dict[str, list[str]]] = [{"bearerToken": []}, {"basicAuth": []}]
OPERATOR = "Operators only, and never from another site's page (see Access)."
AGENT: Schema = {
    "type": "string",
    "minLength": 1,
    "maxLength": bounds.AGENT_NAME,
    "description": 'an agent\'s name (its explicit-dispatch name), or "*" for every agent',
}
WINDOW_FIELDS: dict[str, Schema] = {
    "id": {"type": "integer", "minimum": 1},
    "agent": AGENT,
    "until": TIME,
    "reason": STRING,
    "by": {**STRING, "description": "who started it (the name of the caller's token)"},
}
SCHEMAS: dict[str, Schema] = {
    "MaintenanceStarted": obj("The window started", WINDOW_FIELDS),
    "MaintenanceWindow": obj(
        "A maintenance window: while active, no restart, rollback, deploy hook or alert for its agents",
        {
            **WINDOW_FIELDS,
            "starts_at": TIME,
            "ended_at": {**MAYBE_TIME, "description": "when it was ended early"},
            "active": {"type": "boolean", "description": "it covers its agent(s) now"},
        },
    ),
    "MaintenanceWindows": obj(
        "The active windows and the recent ones, newest first",
        {"windows": {"type": "array", "items": ref("MaintenanceWindow")}},
    ),
}
WINDOW_ASKED: Schema = {
    "type": "object",
    "properties": {
        "agent": AGENT,
        "minutes": {"type": "integer", "minimum": MINUTES[0], "maximum": MINUTES[1]},
        "reason": {"type": "string", "maxLength": REASON_CHARS, "default": ""},
    },
    "required": ["agent", "minutes"],
    "additionalProperties": False,
}


def _response(description: str, schema: Schema) -> Schema:
    return {"description": description, "content": {JSON: {"schema": schema}}}


def _error(description: str) -> Schema:
    return _response(description, ref("Error"))


AUTH_ERRORS = {
    "401": _error("a token is set (WARDEN_TOKENS, WARDEN_ADMIN_TOKEN) and the request carries none of them"),
    "403": _error(
        "no token is set and the client is not on loopback; for a POST or DELETE, also a viewer's "
        "token, or a request from another site's page (Origin, Sec-Fetch-Site)"
    ),
    "503": _error("the database is unavailable; retry later"),
}
PATHS: dict[str, Schema] = {
    "/api/maintenance": {
        "get": {
            "operationId": "listMaintenanceWindows",
            "summary": "Maintenance windows: the active ones and the recent ones, newest first",
            "security": ADMIN,
            "responses": {"200": _response("the windows", ref("MaintenanceWindows")), **AUTH_ERRORS},
        },
        "post": {
            "operationId": "startMaintenance",
            "summary": "Start a maintenance window over an agent, or every agent, from now",
            "description": f"{OPERATOR} While it is active Warden restarts, rolls back and calls the "
            "deploy hook for none of its agents and sends no alert for their incidents (recorded "
            "`in_maintenance`); rooms are still re-dispatched. When it ends with the outage still "
            "there, escalation proceeds as if the outage had just been seen.",
            "security": ADMIN,
            "requestBody": {"required": True, "content": {JSON: {"schema": WINDOW_ASKED}}},
            "responses": {
                "201": _response("started", ref("MaintenanceStarted")),
                "400": _error("the body is not a valid window (nothing was stored)"),
                "413": _error(f"the body is over {MAX_BODY} bytes"),
                **AUTH_ERRORS,
            },
        },
    },
    "/api/maintenance/{id}": {
        "delete": {
            "operationId": "endMaintenance",
            "summary": "End a maintenance window now",
            "description": f"{OPERATOR} Escalation goes on if the outage is still there.",
            "security": ADMIN,
            "parameters": [
                {
                    "name": "id",
                    "in": "path",
                    "required": True,
                    "description": "the window's id",
                    "schema": {"type": "integer", "minimum": 0},
                }
            ],
            "responses": {
                "200": _response("ended", ref("MaintenanceWindow")),
                "404": _error("there is no such window"),
                "409": _error("the window is over already (ended, or run out)"),
                **AUTH_ERRORS,
            },
        }
    },
}

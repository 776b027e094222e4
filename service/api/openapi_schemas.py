"""The JSON Schemas (OpenAPI 3.1) of what the operator API answers: rooms, timelines, incidents, dead
letters, canaries, errors. Objects list every field the API writes today, with its type, and stay open
(`additionalProperties` allowed) so that a new field does not break a generated client."""

from __future__ import annotations

from typing import Any

from workers.core.canary import Outcome
from workers.core.liveness import STATES
from workers.core.room import ROOM_STATES, Phase, Reason, Recovery

Schema = dict[str, Any]


def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def nullable(schema: Schema) -> Schema:
    """`schema` or null (3.1: a type list when `schema` has a plain type, else anyOf)."""
    if "type" in schema and isinstance(schema["type"], str) and "enum" not in schema:
        return {**schema, "type": [schema["type"], "null"]}
    return {"anyOf": [schema, {"type": "null"}]}


def obj(description: str, properties: dict[str, Schema], *, optional: tuple[str, ...] = ()) -> Schema:
    """An open object whose listed properties are all present, except the `optional` ones."""
    return {
        "type": "object",
        "description": description,
        "properties": properties,
        "required": [name for name in properties if name not in optional],
        "additionalProperties": True,
    }


STRING: Schema = {"type": "string"}
INTEGER: Schema = {"type": "integer"}
TIME: Schema = {"type": "string", "format": "date-time", "description": "ISO 8601, UTC (`Z`)"}
MAYBE_TIME: Schema = nullable(TIME)
MAYBE_STRING: Schema = nullable(STRING)


def _page(items: str, item: str, description: str, *, next_link: bool = False) -> Schema:
    fields: dict[str, Schema] = {
        items: {"type": "array", "items": ref(item)},
        "total": {"type": "integer", "minimum": 0, "description": "how many there are in all"},
        "limit": {"type": "integer", "minimum": 1},
        "offset": {"type": "integer", "minimum": 0},
    }
    if next_link:
        fields["next"] = {**MAYBE_STRING, "description": "the next page's path and query, null on the last"}
    return obj(description, fields)


PERSON = obj(
    "Someone in the room who is not an agent",
    {"identity": STRING, "sid": STRING, "joined_at": TIME},
)
AGENT_STATE = {
    **MAYBE_STRING,
    "enum": [*STATES, None],
    "description": "its `lk.agent.state` attribute as Warden last listed it (agents on LiveKit's agents "
    "framework publish it; null: never seen). initializing for WARDEN_STUCK_INITIALIZING_SECONDS or "
    "thinking for WARDEN_STUCK_THINKING_SECONDS while people are there: replaced as stalled",
}
AGENT_STATE_SINCE = {
    **MAYBE_TIME,
    "description": "when Warden first saw it in that state (LiveKit stamps no time on attributes: at "
    "worst one WARDEN_LIVENESS_SECONDS late)",
}
AGENT = obj(
    "An agent in the room",
    {
        "identity": STRING,
        "sid": STRING,
        "agent_name": {**STRING, "description": "its explicit-dispatch name (empty when it has none)"},
        "joined_at": TIME,
        "active_at": {**MAYBE_TIME, "description": "when it last published a track or sent a heartbeat"},
        "agent_state": AGENT_STATE,
        "agent_state_since": AGENT_STATE_SINCE,
    },
)
DEADLINE = obj(
    "The room's next check",
    {
        "attempt": INTEGER,
        "at": TIME,
        "reason": {"type": "string", "enum": [str(r) for r in Reason]},
    },
)
RECOVERY = obj(
    "What Warden is doing about the room's agent",
    {
        "state": {"type": "string", "enum": [str(r) for r in Recovery]},
        "deadline": nullable(ref("Deadline")),
        "redispatches": {
            "type": "integer",
            "minimum": 0,
            "description": "re-dispatches of the agent in the room, as its timeline shows them",
        },
        "dispatch_id": {**MAYBE_STRING, "description": "the agent's dispatch live now, as last known"},
        "error": MAYBE_STRING,
    },
)
EXPECTED_AGENT = obj(
    "An agent the room expects, with where Warden learned of it, and its own state and recovery",
    {
        "agent_name": {**STRING, "description": "empty: an unnamed (automatic-dispatch) agent"},
        "sources": {
            "type": "array",
            "items": {"type": "string", "enum": ["dispatch", "job", "rule", "setting"]},
        },
        "state": {"type": "string", "enum": [str(p) for p in Phase]},
        "agent_joined_at": MAYBE_TIME,
        "time_to_agent": nullable({"type": "number", "minimum": 0}),
        "agent_state": {**AGENT_STATE, "description": "its agent's in the room (see Agent)"},
        "agent_state_since": AGENT_STATE_SINCE,
        "recovery": ref("Recovery"),
    },
)
ROOM_FIELDS: dict[str, Schema] = {
    "name": {**STRING, "description": "phone numbers in it masked (last four digits)"},
    "sid": STRING,
    "state": {
        "type": "string",
        "enum": list(ROOM_STATES),
        "description": "its agent most in need's phase; fallback: people wait and a fallback was taken",
    },
    "sip": {"type": "boolean", "description": "a phone caller is or was in the room"},
    "expected": {"type": "array", "items": ref("ExpectedAgent")},
    "expects": {
        "type": "string",
        "enum": ["learned", "not yet known"],
        "description": "learned: from LiveKit or a rule (an empty `expected` then means no agent)",
    },
    "people": {"type": "array", "items": ref("Person")},
    "people_unlisted": {
        "type": "integer",
        "description": "people present beyond those listed (WARDEN_ROOM_PEOPLE_LISTED): counted only",
    },
    "agents": {"type": "array", "items": ref("Agent")},
    "started_at": MAYBE_TIME,
    "finished_at": MAYBE_TIME,
    "first_person_at": MAYBE_TIME,
    "agent_joined_at": MAYBE_TIME,
    "waiting_since": MAYBE_TIME,
    "updated_at": MAYBE_TIME,
    "confirmed_at": {**MAYBE_TIME, "description": "when reconciliation last found it as Warden knows it"},
    "recovery": ref("Recovery"),
}
TIMELINE_ENTRY = obj(
    "One line of a room's log: a LiveKit webhook, one of Warden's own facts, or an action it decided",
    {
        "type": {**STRING, "description": "the webhook's event, the fact's or the action's name"},
        "source": {"type": "string", "enum": ["livekit", "warden", "action"]},
        "id": {**MAYBE_STRING, "description": "the event's id (null for actions)"},
        "participant": MAYBE_STRING,
        "created_at": TIME,
        "received_at": TIME,
        "detail": {
            "type": "object",
            "description": "facts and actions: what was asked or decided; a decision's `carried_out` is "
            "false when Warden, in observe mode, recorded it and did not make it",
        },
        "participant_kind": {**MAYBE_STRING, "description": "webhooks: STANDARD, AGENT, SIP, …"},
        "track": {**MAYBE_STRING, "description": "webhooks: the track's sid"},
    },
    optional=("detail", "participant_kind", "track"),
)
INCIDENT_FIELDS: dict[str, Schema] = {
    "id": STRING,
    "agent_name": STRING,
    "state": {"type": "string", "enum": ["open", "resolved"]},
    "reason": STRING,
    "opened_at": TIME,
    "resolved_at": MAYBE_TIME,
    "time_to_recovery_seconds": nullable({"type": "number", "minimum": 0}),
    "restarted_at": MAYBE_TIME,
    "rooms": {"type": "integer", "minimum": 0, "description": "how many rooms it took in"},
    "rooms_waiting": {"type": "integer", "minimum": 0, "description": "its rooms still without their agent"},
    "kind": {
        "type": "string",
        "enum": ["outage", "capacity"],
        "description": "outage: its workers are gone (restarted); capacity: full (never restarted)",
    },
    "worker_ids": {
        "type": "array",
        "items": STRING,
        "description": "workers that took 3 jobs in the window whose agent never came",
    },
    "acknowledged_at": {**MAYBE_TIME, "description": "when an operator acknowledged it (null: nobody yet)"},
    "acknowledged_by": {**MAYBE_STRING, "description": "the name of the operator's token (never the token)"},
    "in_maintenance": {
        "type": "boolean",
        "description": "a maintenance window covered its agent: no restart, no alert",
    },
}
INCIDENT_ROOM = obj(
    "A room in an incident", {"sid": STRING, "name": STRING, "added_at": TIME, "recovered_at": MAYBE_TIME}
)
INCIDENT_ACTION = obj(
    "One step Warden took (`carried_out` false: decided in observe mode, `WARDEN_MODE=observe`, not made)",
    {"at": TIME, "action": STRING, "outcome": STRING, "carried_out": {"type": "boolean"}},
)
DEAD_LETTER_FIELDS: dict[str, Schema] = {
    "id": STRING,
    "function": STRING,
    "room": obj("the room it was about, when known", {"sid": MAYBE_STRING, "name": MAYBE_STRING}),
    "args": {"type": "array", "description": "the job's arguments"},
    "error": STRING,
    "attempts": {"type": "integer", "minimum": 0},
    "failed_at": TIME,
    "retried_at": MAYBE_TIME,
    "retried_by": {
        "type": ["string", "null"],
        "description": "who re-ran it: the name of the operator's token (WARDEN_TOKENS; `admin` for "
        "WARDEN_ADMIN_TOKEN, `loopback` with no token set), never the token",
    },
}
CANARY_RUN = obj(
    "One canary run: its room, when it started and ended, and whether the agent came in time",
    {
        "n": {"type": "integer", "minimum": 1, "description": "the run's number (its room's last part)"},
        "room": STRING,
        "started_at": TIME,
        "finished_at": MAYBE_TIME,
        "outcome": {
            "type": "string",
            "enum": [str(o) for o in Outcome],
            "description": "pass; fail (the agent did not come in time: counts towards the outage); "
            "capacity (LiveKit refused its job for want of capacity: the workers are full, a capacity "
            "incident, never counted as an outage's failure); interrupted (its worker stopped); running",
        },
        "seconds": nullable({"type": "number", "minimum": 0, "description": "from dispatch to agent"}),
        "detail": STRING,
    },
)
AGENT_CANARIES = obj(
    "An agent's canaries",
    {
        "agent": STRING,
        "configured": {
            "type": "boolean",
            "description": "named by WARDEN_CANARY_AGENTS or by a rule with canary = true "
            "(false: runs on record only)",
        },
        "every_seconds": nullable({"type": "number", "exclusiveMinimum": 0}),
        "sla_seconds": nullable({"type": "number", "exclusiveMinimum": 0}),
        "failures_to_open": {
            "type": "integer",
            "minimum": 1,
            "description": "failures in a row that open the agent's incident (WARDEN_CANARY_FAILURES)",
        },
        "failing_in_a_row": {
            "type": "integer",
            "minimum": 0,
            "description": "failed runs in a row, newest first "
            "(capacity, interrupted and running runs skipped)",
        },
        "last_success_at": {**MAYBE_TIME, "description": "when its last passing canary ended"},
        "runs": {"type": "array", "items": ref("CanaryRun")},
    },
)
SERVICE_LEVEL = obj(
    "One service level over the window: rooms counted good, rooms counted, and the share good",
    {
        "good": {"type": "integer", "minimum": 0},
        "total": {"type": "integer", "minimum": 0},
        "ratio": nullable(
            {"type": "number", "minimum": 0, "maximum": 1, "description": "null: none counted"}
        ),
    },
)
AGENT_SLO = obj(
    "An agent's service levels, each room counted once when its fate for the agent was known",
    {
        "agent": STRING,
        "objective": {
            "type": "number",
            "exclusiveMinimum": 0,
            "exclusiveMaximum": 1,
            "description": "the objective for served: its rule's slo, else WARDEN_SLO",
        },
        "window": {"type": "string", "description": "WARDEN_SLO_WINDOW, e.g. 30d"},
        "on_time": {**ref("ServiceLevel"), "description": "its agent came within its join SLA, unhelped"},
        "served": {**ref("ServiceLevel"), "description": "its agent came in the end (a fallback does not)"},
        "budget_remaining": {
            "type": "number",
            "description": "1 - (bad share of served) / (1 - objective) over the window; below 0: overspent",
        },
        "burn_rate_1h": {
            "type": "number",
            "minimum": 0,
            "description": "bad share of served over the last hour / (1 - objective); 1 spends the budget "
            "in exactly the window",
        },
    },
)
HEARTBEAT_QUEUED = obj(
    "The heartbeat is queued for the worker",
    {"status": {"const": "queued"}, "room": STRING, "identity": STRING},
)
ERROR = obj("What went wrong, for people", {"error": STRING})
OPERATOR_QUEUED = obj(
    "The operator's request, queued for the worker, which applies it through the room's or the "
    "incident's machine (in its timeline or log, with `by`)",
    {
        "status": {"const": "queued"},
        "action": {"type": "string", "enum": ["ack", "restart", "redispatch"]},
        "by": {**STRING, "description": "the name of the operator's token (never the token)"},
        "incident_id": STRING,
        "room": STRING,
        "agent": STRING,
    },
    optional=("incident_id", "room", "agent"),
)
COOLDOWN = obj(
    "Refused: the deployment's restart cooldown runs (or a restart is under way)",
    {
        "error": STRING,
        "cooldown_ends": {**MAYBE_TIME, "description": "when a restart may be asked for again"},
    },
    optional=("cooldown_ends",),
)

SCHEMAS: dict[str, Schema] = {
    "Person": PERSON,
    "Agent": AGENT,
    "Deadline": DEADLINE,
    "Recovery": RECOVERY,
    "ExpectedAgent": EXPECTED_AGENT,
    "Room": obj("A room as Warden knows it", ROOM_FIELDS),
    "RoomPage": _page("rooms", "Room", "A page of rooms, newest first", next_link=True),
    "TimelineEntry": TIMELINE_ENTRY,
    "RoomDetail": obj(
        "A room with its timeline: the newest WARDEN_TIMELINE_SHOWN entries, the earlier ones counted",
        {
            **ROOM_FIELDS,
            "timeline": {"type": "array", "items": ref("TimelineEntry")},
            "timeline_earlier": {
                "type": "object",
                "additionalProperties": {"type": "integer", "minimum": 1},
                "description": "entries before those listed, by type (empty: the whole log is listed)",
            },
        },
    ),
    "Incident": obj("An agent outage: rooms missing their agent together", INCIDENT_FIELDS),
    "IncidentRoom": INCIDENT_ROOM,
    "IncidentAction": INCIDENT_ACTION,
    "IncidentDetail": obj(
        "An incident with its rooms and every step Warden took",
        {
            **INCIDENT_FIELDS,
            "rooms": {"type": "array", "items": ref("IncidentRoom")},
            "actions": {"type": "array", "items": ref("IncidentAction")},
        },
    ),
    "IncidentPage": _page("incidents", "Incident", "A page of incidents, newest first"),
    "DeadLetter": obj("A job that failed for good", DEAD_LETTER_FIELDS),
    "DeadLetters": obj(
        "Dead letters, newest first", {"dead_letters": {"type": "array", "items": ref("DeadLetter")}}
    ),
    "Retried": obj(
        "The dead letter, now marked re-run, and the re-run's job id",
        {**DEAD_LETTER_FIELDS, "job_id": STRING},
    ),
    "CanaryRun": CANARY_RUN,
    "AgentCanaries": AGENT_CANARIES,
    "Canaries": obj(
        "The configured agents, then others with runs on record",
        {"agents": {"type": "array", "items": ref("AgentCanaries")}},
    ),
    "ServiceLevel": SERVICE_LEVEL,
    "AgentServiceLevels": AGENT_SLO,
    "ServiceLevels": obj(
        "The configured agents, then others with outcomes in the window",
        {"agents": {"type": "array", "items": ref("AgentServiceLevels")}},
    ),
    "HeartbeatQueued": HEARTBEAT_QUEUED,
    "Error": ERROR,
    "OperatorQueued": OPERATOR_QUEUED,
    "RestartRefused": COOLDOWN,
}

"""LiveKit's webhooks into the core's events: `from_webhook_json` reduces a `livekit.WebhookEvent`, in
the protojson form `service.intake.body.loads_webhook` returns, to a `workers.core.events.Event`.

Here, not in the core, because reading protojson enums by name needs the message's descriptors
(livekit.protocol, protobuf); the core keeps only the numbers (`ParticipantKind`, `JobStatus`). Every
value kept is bounded here, before anything is queued (`workers.core.bounds`: exact values over their
bound refuse the event, free text is clipped, odd event ids are hashed).
"""

from __future__ import annotations

from typing import Any

from livekit.protocol.webhook import WebhookEvent

from workers.core import bounds
from workers.core.errors import MalformedEvent
from workers.core.events import INTERNAL_KINDS, Event, EventKind, ParticipantKind
from workers.core.liveness import STATES
from workers.core.personal import mask_identity
from workers.core.plain import from_plain

AGENT_NAME_ATTRIBUTES = ("lk.agent_name", "lk.agent.name")
ON_BEHALF_ATTRIBUTE = "lk.publish_on_behalf"  # an avatar worker: the identity of the agent it speaks for
# An agent's own state (livekit-agents' `ATTRIBUTE_AGENT_STATE`): initializing, idle, listening, thinking,
# speaking. Anything else is kept as unknown (""), never stored as sent.
AGENT_STATE_ATTRIBUTE = "lk.agent.state"
AGENT_STATES = frozenset(STATES)


def agent_state(attributes: Any) -> str:
    """The `lk.agent.state` attribute among `attributes`, if it is one of the framework's states."""
    state = attributes.get(AGENT_STATE_ATTRIBUTE, "")
    return state if state in AGENT_STATES else ""


def from_webhook_json(data: dict[str, Any], *, fallback_id: str) -> Event:
    """Reduce a WebhookEvent in protojson form, as `json_format.Parse` accepts it (the web checks that,
    see `service.intake.body`): integers may be strings, enums names or numbers, defaults may be
    missing. `fallback_id` names events sent without an `id` (older servers)."""
    return from_plain(Event, webhook_event(data, fallback_id=fallback_id))


def webhook_event(data: dict[str, Any], *, fallback_id: str) -> dict[str, Any]:
    """`from_webhook_json`'s event in the plain form its job carries (`to_dict`'s, the kind as the
    string it stands for), built directly: the web queues it without making the dataclasses."""
    name = data.get("event", "")
    if not name:
        raise MalformedEvent("body is not a LiveKit WebhookEvent (no 'event' field)")
    kind = name if name in _WEBHOOK_KINDS else OTHER  # a webhook can never pose as Warden's own events
    room = data.get("room", {})
    room_sid, room_name = room.get("sid", ""), room.get("name", "")
    job = None
    if "job" in data:
        raw, state = data["job"], data["job"].get("state", {})
        job = {
            "id": _exact(raw.get("id", ""), bounds.SID, "job.id"),
            "agent_name": _exact(raw.get("agentName", ""), bounds.AGENT_NAME, "job.agentName"),
            "dispatch_id": _exact(raw.get("dispatchId", ""), bounds.SID, "job.dispatchId"),
            "status": _enum(_STATUS, state.get("status", 0)),
            "participant_identity": _exact(
                state.get("participantIdentity", ""), bounds.IDENTITY, "job.state.participantIdentity"
            ),
            "error": bounds.clip(state.get("error", ""), bounds.TEXT),
            "reason": _enum(_REASON, state.get("reason", 0)),
            "worker_id": worker_id(state.get("workerId", "")),
        }
        room_sid = room_sid or raw.get("room", {}).get("sid", "")
        room_name = room_name or raw.get("room", {}).get("name", "")
    participant = None
    info = data.get("participant", {})
    if info.get("identity"):
        attributes = info.get("attributes", {})
        participant_kind = _enum(_KIND, info.get("kind", 0)) if kind in _KINDS_WITH_PARTICIPANT else None
        agent_name = next((attributes[a] for a in AGENT_NAME_ATTRIBUTES if attributes.get(a)), "")
        identity = _exact(info["identity"], bounds.IDENTITY, "participant.identity")
        participant = {
            "identity": mask_identity(identity, participant_kind),  # a caller's is their number
            "sid": _exact(info.get("sid", ""), bounds.SID, "participant.sid"),
            "kind": participant_kind,
            "agent_name": _exact(agent_name, bounds.AGENT_NAME, "participant's agent name attribute"),
            "joined_at": 0.0,
            "on_behalf": _exact(
                str(attributes.get(ON_BEHALF_ATTRIBUTE, "")), bounds.IDENTITY, "lk.publish_on_behalf"
            ),
            "publishing": False,
            "state": agent_state(attributes) if participant_kind == ParticipantKind.AGENT else "",
        }
    return {
        "id": bounds.event_id(data.get("id", ""), fallback_id),
        "kind": kind,
        "name": bounds.clip(name, bounds.EVENT_NAME),  # only shown: a name Warden knows is far shorter
        "created_at": int(data.get("createdAt", 0)),
        "room_sid": _exact(room_sid, bounds.SID, "room.sid"),
        "room_name": _exact(room_name, bounds.ROOM_NAME, "room.name"),
        "participant": participant,
        "track_sid": _exact(data.get("track", {}).get("sid", ""), bounds.SID, "track.sid"),
        "job": job,
        "fact": None,
    }


def worker_id(value: str) -> str:
    """A job's worker id as Warden keeps it: only shown and counted, so one over its bound (or holding a
    NUL) is dropped, not refused with the whole event."""
    return value if bounds.problem(value, bounds.SID) is None else ""


def _exact(value: str, limit: int, field: str) -> str:
    """`value`, which Warden must keep exactly as LiveKit sent it, or `MalformedEvent` (answered 400)
    when it cannot be (`workers.core.bounds`). The message names the field, never the value."""
    problem = bounds.problem(value, limit)
    if problem is not None:
        raise MalformedEvent(f"{field} is {problem}: refused whole, never clipped (see Warden's bounds)")
    return value


def _enum(field: Any, value: int | str) -> int:
    """A protojson enum value (its name or its number) as its number, by the field's descriptor."""
    return value if isinstance(value, int) else int(field.enum_type.values_by_name[value].number)


_FIELDS: Any = WebhookEvent.DESCRIPTOR.fields_by_name
_KIND = _FIELDS["participant"].message_type.fields_by_name["kind"]
_STATE = _FIELDS["job"].message_type.fields_by_name["state"].message_type.fields_by_name
_STATUS, _REASON = _STATE["status"], _STATE["reason"]

OTHER = EventKind.OTHER.value
_WEBHOOK_KINDS = frozenset(kind.value for kind in EventKind if kind not in INTERNAL_KINDS)
_KINDS_WITH_PARTICIPANT = frozenset(
    kind.value
    for kind in (
        EventKind.PARTICIPANT_JOINED,
        EventKind.PARTICIPANT_LEFT,
        EventKind.PARTICIPANT_CONNECTION_ABORTED,
    )
)

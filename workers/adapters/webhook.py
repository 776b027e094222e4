"""LiveKit's webhooks into the core's events: `from_webhook_json` reduces a `livekit.WebhookEvent`, in
the protojson form `service.intake.body.loads_webhook` returns, to a `workers.core.events.Event`.

Here, not in the core, because reading protojson enums by name needs the message's descriptors
(livekit.protocol, protobuf); the core keeps only the numbers (`ParticipantKind`, `JobStatus`).
"""

from __future__ import annotations

from typing import Any

from livekit.protocol.webhook import WebhookEvent

from workers.core.errors import MalformedEvent
from workers.core.events import INTERNAL_KINDS, Event, EventKind, Job, Participant
from workers.core.personal import mask_identity

AGENT_NAME_ATTRIBUTES = ("lk.agent_name", "lk.agent.name")
ON_BEHALF_ATTRIBUTE = "lk.publish_on_behalf"  # an avatar worker: the identity of the agent it speaks for


def from_webhook_json(data: dict[str, Any], *, fallback_id: str) -> Event:
    """Reduce a WebhookEvent in protojson form, as `json_format.Parse` accepts it (the web checks that,
    see `service.intake.body`): integers may be strings, enums names or numbers, defaults may be
    missing. `fallback_id` names events sent without an `id` (older servers)."""
    name = data.get("event", "")
    if not name:
        raise MalformedEvent("body is not a LiveKit WebhookEvent (no 'event' field)")
    try:
        kind = EventKind(name)
    except ValueError:
        kind = EventKind.OTHER
    if kind in INTERNAL_KINDS:  # a webhook can never pose as one of Warden's own events
        kind = EventKind.OTHER
    room = data.get("room", {})
    room_sid, room_name = room.get("sid", ""), room.get("name", "")
    job = None
    if "job" in data:
        raw, state = data["job"], data["job"].get("state", {})
        job = Job(
            id=raw.get("id", ""),
            agent_name=raw.get("agentName", ""),
            dispatch_id=raw.get("dispatchId", ""),
            status=_enum(_STATUS, state.get("status", 0)),
            participant_identity=state.get("participantIdentity", ""),
            error=state.get("error", ""),
        )
        room_sid = room_sid or raw.get("room", {}).get("sid", "")
        room_name = room_name or raw.get("room", {}).get("name", "")
    participant = None
    info = data.get("participant", {})
    if info.get("identity"):
        has_kind = kind in (
            EventKind.PARTICIPANT_JOINED,
            EventKind.PARTICIPANT_LEFT,
            EventKind.PARTICIPANT_CONNECTION_ABORTED,
        )
        attributes = info.get("attributes", {})
        participant_kind = _enum(_KIND, info.get("kind", 0)) if has_kind else None
        participant = Participant(
            identity=mask_identity(info["identity"], participant_kind),  # a caller's is their number
            sid=info.get("sid", ""),
            kind=participant_kind,
            agent_name=next((attributes[a] for a in AGENT_NAME_ATTRIBUTES if attributes.get(a)), ""),
            on_behalf=str(attributes.get(ON_BEHALF_ATTRIBUTE, "")),
        )
    return Event(
        id=data.get("id", "") or fallback_id,
        kind=kind,
        name=name,
        created_at=int(data.get("createdAt", 0)),
        room_sid=room_sid,
        room_name=room_name,
        participant=participant,
        track_sid=data.get("track", {}).get("sid", ""),
        job=job,
    )


def _enum(field: Any, value: int | str) -> int:
    """A protojson enum value (its name or its number) as its number, by the field's descriptor."""
    return value if isinstance(value, int) else int(field.enum_type.values_by_name[value].number)


_FIELDS: Any = WebhookEvent.DESCRIPTOR.fields_by_name
_KIND = _FIELDS["participant"].message_type.fields_by_name["kind"]
_STATUS = _FIELDS["job"].message_type.fields_by_name["state"].message_type.fields_by_name["status"]

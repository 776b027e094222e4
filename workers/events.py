"""The state machine's input: a LiveKit webhook reduced to the facts Warden uses.

`from_webhook` turns a parsed `livekit.WebhookEvent` into an `Event`; `to_dict` / `from_dict` carry
it through the job queue and the event log as plain JSON. Nothing secret survives the reduction
(the room's TURN password, metadata and track details are dropped), so the queue, the database and
the API never hold them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from enum import IntEnum, StrEnum
from typing import Any

from livekit.protocol.webhook import WebhookEvent

from workers.errors import MalformedEvent


class EventKind(StrEnum):
    """Webhook names the state machine reads; everything else becomes OTHER (recorded, ignored)."""

    ROOM_STARTED = "room_started"
    ROOM_FINISHED = "room_finished"
    PARTICIPANT_JOINED = "participant_joined"
    PARTICIPANT_LEFT = "participant_left"
    PARTICIPANT_CONNECTION_ABORTED = "participant_connection_aborted"
    TRACK_PUBLISHED = "track_published"
    TRACK_UNPUBLISHED = "track_unpublished"
    AGENT_JOB_STARTED = "agent_job_started"
    AGENT_JOB_ENDED = "agent_job_ended"
    OTHER = "other"


class ParticipantKind(IntEnum):
    """livekit.ParticipantInfo.Kind, by number (protojson omits STANDARD, the zero value)."""

    STANDARD = 0
    INGRESS = 1
    EGRESS = 2
    SIP = 3
    AGENT = 4
    CONNECTOR = 7
    BRIDGE = 8


class JobStatus(IntEnum):
    """livekit.JobStatus. RUNNING means a worker *accepted* the job, not that the agent joined."""

    PENDING = 0
    RUNNING = 1
    SUCCESS = 2
    FAILED = 3
    CANCELLED = 4


AGENT_NAME_ATTRIBUTES = ("lk.agent_name", "lk.agent.name")


@dataclass(frozen=True)
class Participant:
    """Who an event is about. `kind` is None on track events, which carry only sid and identity."""

    identity: str
    sid: str = ""
    kind: int | None = None
    agent_name: str = ""

    @property
    def is_agent(self) -> bool:
        return self.kind == ParticipantKind.AGENT

    @property
    def is_person(self) -> bool:
        """People are everyone but agents and egress recorders (SIP callers and ingress streams count)."""
        return self.kind is not None and self.kind not in (ParticipantKind.AGENT, ParticipantKind.EGRESS)


@dataclass(frozen=True)
class Job:
    """An agent job as `agent_job_*` events report it."""

    id: str
    agent_name: str = ""
    dispatch_id: str = ""
    status: int = JobStatus.PENDING
    participant_identity: str = ""
    error: str = ""


@dataclass(frozen=True)
class Event:
    """One webhook, reduced. `created_at` is LiveKit's Unix time in seconds."""

    id: str
    kind: EventKind
    name: str
    created_at: int
    room_sid: str = ""
    room_name: str = ""
    participant: Participant | None = None
    track_sid: str = ""
    job: Job | None = None


def from_webhook(proto: WebhookEvent, *, fallback_id: str) -> Event:
    """Reduce a parsed WebhookEvent; `fallback_id` names events sent without an `id` (older servers)."""
    if not proto.event:
        raise MalformedEvent("body is not a LiveKit WebhookEvent (no 'event' field)")
    try:
        kind = EventKind(proto.event)
    except ValueError:
        kind = EventKind.OTHER
    room_sid, room_name = proto.room.sid, proto.room.name
    job = None
    if proto.HasField("job"):
        job = Job(
            id=proto.job.id,
            agent_name=proto.job.agent_name,
            dispatch_id=proto.job.dispatch_id,
            status=int(proto.job.state.status),
            participant_identity=proto.job.state.participant_identity,
            error=proto.job.state.error,
        )
        room_sid = room_sid or proto.job.room.sid
        room_name = room_name or proto.job.room.name
    participant = None
    if proto.HasField("participant") and proto.participant.identity:
        info = proto.participant
        has_kind = kind in (
            EventKind.PARTICIPANT_JOINED,
            EventKind.PARTICIPANT_LEFT,
            EventKind.PARTICIPANT_CONNECTION_ABORTED,
        )
        participant = Participant(
            identity=info.identity,
            sid=info.sid,
            kind=int(info.kind) if has_kind else None,
            agent_name=next(
                (info.attributes[a] for a in AGENT_NAME_ATTRIBUTES if info.attributes.get(a)), ""
            ),
        )
    return Event(
        id=proto.id or fallback_id,
        kind=kind,
        name=proto.event,
        created_at=int(proto.created_at),
        room_sid=room_sid,
        room_name=room_name,
        participant=participant,
        track_sid=proto.track.sid,
        job=job,
    )


def to_dict(event: Event) -> dict[str, Any]:
    """Plain JSON-able form, for job arguments and the event log."""
    return asdict(event)


def from_dict(data: dict[str, Any]) -> Event:
    """Inverse of `to_dict`."""
    participant = data.get("participant")
    job = data.get("job")
    return Event(
        id=data["id"],
        kind=EventKind(data["kind"]),
        name=data["name"],
        created_at=int(data["created_at"]),
        room_sid=data.get("room_sid", ""),
        room_name=data.get("room_name", ""),
        participant=Participant(**participant) if participant else None,
        track_sid=data.get("track_sid", ""),
        job=Job(**job) if job else None,
    )

"""The state machine's input: a LiveKit webhook reduced to the facts Warden uses, or one of Warden's
own events. Plain data: `workers.adapters.webhook` reduces a `livekit.WebhookEvent` to an `Event`;
`to_dict` and `workers.core.plain.from_plain(Event, data)` carry it through the job queue and the event
log as plain JSON. Nothing secret survives the reduction (the room's TURN password, metadata and track
details are dropped), so the queue, the database and the API never hold them.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum, StrEnum
from typing import Any

from workers.core.plain import as_dict


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
    AGENT_JOB_PENDING = "agent_job_pending"  # protocol 1.53.1: a job is waiting for a worker
    AGENT_JOB_ENDED = "agent_job_ended"
    OTHER = "other"
    # Warden's own events: a timer, the answers of its questions to LiveKit, outcomes of its actions.
    DEADLINE_PASSED = "deadline_passed"
    PRESENCE_OBSERVED = "presence_observed"
    AGENT_EVICTED = "agent_evicted"
    AGENT_DISPATCHED = "agent_dispatched"
    UPSTREAM_FAILED = "upstream_failed"
    HEARTBEAT = "heartbeat"
    AGENT_RESTARTED = "agent_restarted"
    RECONCILED = "reconciled"
    REDISPATCH_ASKED = "redispatch_asked"  # an operator asked for a re-dispatch of one agent now (issue 28)


INTERNAL_KINDS = frozenset(
    {
        EventKind.DEADLINE_PASSED,
        EventKind.PRESENCE_OBSERVED,
        EventKind.AGENT_EVICTED,
        EventKind.AGENT_DISPATCHED,
        EventKind.UPSTREAM_FAILED,
        EventKind.HEARTBEAT,
        EventKind.AGENT_RESTARTED,
        EventKind.RECONCILED,
        EventKind.REDISPATCH_ASKED,
    }
)
# Warden's own events whose fact lists who is there and the room's dispatches (LiveKit's answer).
LISTINGS = frozenset({EventKind.PRESENCE_OBSERVED, EventKind.RECONCILED})


class ParticipantKind(IntEnum):
    """livekit.ParticipantInfo.Kind, by number (protojson omits STANDARD, the zero value)."""

    STANDARD = 0
    INGRESS = 1
    EGRESS = 2
    SIP = 3
    AGENT = 4
    CONNECTOR = 7
    BRIDGE = 8


class JobReason(IntEnum):
    """livekit.JobStateReason (protocol 1.53): why a job is in its status."""

    UNSPECIFIED = 0
    NO_CAPACITY = 1  # the workers are full: the job was refused
    ROOM_CLOSED = 2
    DISPATCH_DELETED = 3
    RETRYING = 4  # LiveKit is retrying the assignment itself


class JobStatus(IntEnum):
    """livekit.JobStatus. RUNNING means a worker *accepted* the job, not that the agent joined."""

    PENDING = 0
    RUNNING = 1
    SUCCESS = 2
    FAILED = 3
    CANCELLED = 4


@dataclass(frozen=True)
class Participant:
    """Who an event is about. `kind` is None on track events, which carry only sid and identity."""

    identity: str
    sid: str = ""
    kind: int | None = None
    agent_name: str = ""
    joined_at: float = 0.0
    on_behalf: str = ""  # an avatar worker: the identity of the agent it speaks for (`lk.publish_on_behalf`)
    publishing: bool = False  # LiveKit's listing shows it with a published track (an agent: working)
    state: str = ""  # an agent's `lk.agent.state` attribute, when the listing or webhook carries it

    @property
    def is_agent(self) -> bool:
        """An agent of its own: an avatar speaking for another agent is neither an agent nor a person."""
        return self.kind == ParticipantKind.AGENT and not self.on_behalf

    @property
    def is_caller(self) -> bool:
        return self.kind == ParticipantKind.SIP

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
    reason: int = JobReason.UNSPECIFIED
    worker_id: str = ""  # the worker that took it ("W_…"), when one did


@dataclass(frozen=True)
class JobInfo:
    """One job of a dispatch as `ListDispatch` reports it: its status, why (`JobReason`), and who took
    it (the worker, and the identity its agent joins as)."""

    status: int = JobStatus.PENDING
    reason: int = JobReason.UNSPECIFIED
    worker_id: str = ""
    identity: str = ""


@dataclass(frozen=True)
class DispatchInfo:
    """One agent dispatch as `ListDispatch` reports it; `statuses` are its jobs' JobStatus values."""

    id: str
    agent_name: str
    metadata: str = ""
    created_at: float = 0.0
    statuses: tuple[int, ...] = ()
    attributes: tuple[tuple[str, str], ...] = ()
    agents: tuple[str, ...] = ()  # its listed jobs' agent identities (who serves it)
    jobs: tuple[JobInfo, ...] = ()  # its listed jobs, with their reasons and workers (`job_signals`)


@dataclass(frozen=True)
class Fact:
    """What one of Warden's own events says: the deadline attempt it belongs to, when (Warden's
    clock, sub-second), and what LiveKit answered or what an action achieved."""

    attempt: int = 0
    at: float = 0.0
    room_exists: bool = True
    participants: tuple[Participant, ...] = ()
    dispatches: tuple[DispatchInfo, ...] = ()
    dispatch_id: str = ""
    error: str = ""
    agent: str = ""  # the agent whose view of the room this event is for ("" : the room's own watch)
    # AGENT_RESTARTED: how long the agent may take to come back (None: the policy's `restart_grace`; 0 once
    # its deployment reports running replicas)
    wait: float | None = None
    # AGENT_DISPATCHED, AGENT_EVICTED: False for a step observe mode decided and did not make
    # (`workers.core.observing`): no dispatch was made, nobody was removed
    carried_out: bool = True
    # AGENT_RESTARTED: the hand-over from observe mode to act (`workers.core.observing`, rule 3): what
    # observe mode decided for the part and did not make (its fallback, what the room was told) is
    # forgotten with its recovery
    observed: bool = False
    by: str = ""  # REDISPATCH_ASKED: the operator's name (a token's name, never the token)


@dataclass(frozen=True)
class Event:
    """One event, reduced. `created_at` is LiveKit's Unix time in seconds (Warden's, for its own)."""

    id: str
    kind: EventKind
    name: str
    created_at: int
    room_sid: str = ""
    room_name: str = ""
    participant: Participant | None = None
    track_sid: str = ""
    job: Job | None = None
    fact: Fact | None = None

    @property
    def at(self) -> float:
        """When it happened: Warden's precise clock for its own events, LiveKit's second otherwise."""
        return self.fact.at if self.fact is not None else float(self.created_at)


def internal(
    kind: EventKind,
    event_id: str,
    room_sid: str,
    room_name: str,
    fact: Fact,
    participant: Participant | None = None,
) -> Event:
    """One of Warden's own events."""
    return Event(event_id, kind, str(kind), int(fact.at), room_sid, room_name, participant, fact=fact)


def to_dict(event: Event) -> dict[str, Any]:
    """Plain JSON-able form, for job arguments and the event log."""
    return as_dict(event)

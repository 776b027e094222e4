"""The room state machine. Pure: no I/O, no clock, no settings; time and policy are inputs.

The rules, in plain words:

1. A room is keyed by its sid (names get reused). It starts IDLE: known, nobody in it.
2. People are every participant but agents and egress recorders. "Our" agent is a participant of
   kind AGENT whose name is the policy's `agent_name` (any agent when that is empty; an agent that
   does not say its name counts too, so that Warden never books a second one beside it).
3. The phase follows from who is present, and from the phase before:
   - CLOSED once `room_finished` arrived; nothing changes a closed room again.
   - AGENT_ACTIVE when our agent is present and has published a track; AGENT_PRESENT when it is
     present and has not.
   - Otherwise IDLE when no person is present;
   - AGENT_LOST when people remain and our agent was present just before (it left early);
     it stays AGENT_LOST while people come and go, until an agent arrives or everyone leaves;
   - WAITING when people are present and no agent has come yet.
4. Participants are tracked by identity *and* sid: a `participant_left` for an old sid does not
   remove the identity's newer session (LiveKit's duplicate-identity takeover).
5. A track event carries only the participant's identity; it marks our agent active if that identity
   is one of the agents present, and says nothing about people.
6. `agent_job_ended` means the job's agent participant is gone, whatever the job's status.
7. Events are applied in LiveKit's `created_at` order; within one second, in lifecycle order
   (`ORDER_RANK`), so a `participant_left` never precedes its own `participant_joined`. The store
   re-folds a room from its log when an older event arrives late.
8. Every (phase, event kind) pair is declared in `TABLE`, including the ones that are ignored.

`transition` returns a `Decision`: the next room and the actions to take. This first cut takes
none; recovery (deadlines, presence checks, re-dispatch) adds them here, as data.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, replace
from enum import StrEnum
from itertools import product
from typing import Any

from workers.events import Event, EventKind


class Phase(StrEnum):
    IDLE = "idle"
    WAITING = "waiting"
    AGENT_PRESENT = "agent_present"
    AGENT_ACTIVE = "agent_active"
    AGENT_LOST = "agent_lost"
    CLOSED = "closed"


@dataclass(frozen=True)
class Policy:
    """What the machine is told from outside: the agent every room must have ('' = any agent)."""

    agent_name: str = ""

    def counts(self, agent_name: str) -> bool:
        return not self.agent_name or not agent_name or agent_name == self.agent_name


@dataclass(frozen=True)
class Person:
    identity: str
    sid: str
    joined_at: int


@dataclass(frozen=True)
class Agent:
    identity: str
    sid: str
    name: str
    joined_at: int
    active_at: int | None = None


@dataclass(frozen=True)
class Room:
    sid: str
    name: str
    phase: Phase = Phase.IDLE
    people: tuple[Person, ...] = ()
    agents: tuple[Agent, ...] = ()
    started_at: int | None = None
    finished_at: int | None = None
    first_person_at: int | None = None
    agent_joined_at: int | None = None
    waiting_since: int | None = None
    updated_at: float = 0.0

    def our_agents(self, policy: Policy) -> tuple[Agent, ...]:
        return tuple(a for a in self.agents if policy.counts(a.name))


@dataclass(frozen=True)
class Action:
    """Base of the actions a decision can ask the effects layer to carry out."""


@dataclass(frozen=True)
class Decision:
    room: Room
    actions: tuple[Action, ...] = ()


Handler = Callable[[Room, Event], Room]

ORDER_RANK: dict[EventKind, int] = {
    EventKind.ROOM_STARTED: 0,
    EventKind.AGENT_JOB_STARTED: 1,
    EventKind.PARTICIPANT_JOINED: 2,
    EventKind.TRACK_PUBLISHED: 3,
    EventKind.TRACK_UNPUBLISHED: 4,
    EventKind.PARTICIPANT_LEFT: 5,
    EventKind.PARTICIPANT_CONNECTION_ABORTED: 5,
    EventKind.AGENT_JOB_ENDED: 6,
    EventKind.OTHER: 7,
    EventKind.ROOM_FINISHED: 8,
}


def order_key(event: Event) -> tuple[int, int]:
    """Sort key for applying events: LiveKit's second, then lifecycle order within it."""
    return (event.created_at, ORDER_RANK[event.kind])


def _ignore(room: Room, event: Event) -> Room:
    return room


def _start(room: Room, event: Event) -> Room:
    return room if room.started_at is not None else replace(room, started_at=event.created_at)


def _finish(room: Room, event: Event) -> Room:
    return replace(room, finished_at=event.created_at, people=(), agents=())


def _join(room: Room, event: Event) -> Room:
    p = event.participant
    if p is None:
        return room
    if p.is_agent:
        agent = Agent(p.identity, p.sid, p.agent_name, event.created_at)
        agents = (*tuple(a for a in room.agents if a.identity != p.identity), agent)
        return replace(room, agents=agents)
    if p.is_person:
        people = tuple(x for x in room.people if x.identity != p.identity)
        first = room.first_person_at if room.first_person_at is not None else event.created_at
        return replace(
            room, people=(*people, Person(p.identity, p.sid, event.created_at)), first_person_at=first
        )
    return room


def _same_session(identity: str, sid: str) -> Callable[[Person | Agent], bool]:
    return lambda x: x.identity == identity and (not sid or not x.sid or x.sid == sid)


def _leave(room: Room, event: Event) -> Room:
    p = event.participant
    if p is None:
        return room
    gone = _same_session(p.identity, p.sid)
    return replace(
        room,
        people=tuple(x for x in room.people if not gone(x)),
        agents=tuple(a for a in room.agents if not gone(a)),
    )


def _publish(room: Room, event: Event) -> Room:
    p = event.participant
    if p is None:
        return room
    agents = tuple(
        replace(a, active_at=event.created_at)
        if _same_session(p.identity, p.sid)(a) and a.active_at is None
        else a
        for a in room.agents
    )
    return replace(room, agents=agents)


def _job_ended(room: Room, event: Event) -> Room:
    if event.job is None or not event.job.participant_identity:
        return room
    identity = event.job.participant_identity
    return replace(room, agents=tuple(a for a in room.agents if a.identity != identity))


_OPEN_ROOM: dict[EventKind, Handler] = {
    EventKind.ROOM_STARTED: _start,
    EventKind.ROOM_FINISHED: _finish,
    EventKind.PARTICIPANT_JOINED: _join,
    EventKind.PARTICIPANT_LEFT: _leave,
    EventKind.PARTICIPANT_CONNECTION_ABORTED: _leave,
    EventKind.TRACK_PUBLISHED: _publish,
    EventKind.TRACK_UNPUBLISHED: _ignore,
    EventKind.AGENT_JOB_STARTED: _ignore,
    EventKind.AGENT_JOB_ENDED: _job_ended,
    EventKind.OTHER: _ignore,
}

TABLE: dict[tuple[Phase, EventKind], Handler] = {
    (phase, kind): (_ignore if phase is Phase.CLOSED else _OPEN_ROOM[kind])
    for phase, kind in product(Phase, EventKind)
}


def _next_phase(before: Phase, room: Room, policy: Policy) -> Phase:
    if room.finished_at is not None:
        return Phase.CLOSED
    ours = room.our_agents(policy)
    if ours:
        return Phase.AGENT_ACTIVE if any(a.active_at is not None for a in ours) else Phase.AGENT_PRESENT
    if not room.people:
        return Phase.IDLE
    if before in (Phase.AGENT_PRESENT, Phase.AGENT_ACTIVE, Phase.AGENT_LOST):
        return Phase.AGENT_LOST
    return Phase.WAITING


_WAITING = (Phase.WAITING, Phase.AGENT_LOST)


def transition(room: Room, event: Event, *, now: float, policy: Policy) -> Decision:
    """Apply one event to a room: look up the rule in `TABLE`, then settle the phase."""
    handled = TABLE[(room.phase, event.kind)](room, event)
    phase = _next_phase(room.phase, handled, policy)
    waiting_since = handled.waiting_since
    if phase not in _WAITING:
        waiting_since = None
    elif room.phase not in _WAITING:
        waiting_since = event.created_at
    agent_joined_at = handled.agent_joined_at
    if agent_joined_at is None and phase in (Phase.AGENT_PRESENT, Phase.AGENT_ACTIVE):
        agent_joined_at = min(a.joined_at for a in handled.our_agents(policy))
    return Decision(
        replace(
            handled, phase=phase, waiting_since=waiting_since, agent_joined_at=agent_joined_at, updated_at=now
        )
    )


def fold(room: Room, events: Iterable[tuple[Event, float]], *, policy: Policy) -> Room:
    """Apply `(event, received_at)` pairs in `order_key` order; the room's state after all of them."""
    for event, received_at in sorted(events, key=lambda pair: order_key(pair[0])):
        room = transition(room, event, now=received_at, policy=policy).room
    return room


def room_to_dict(room: Room) -> dict[str, object]:
    """Plain JSON-able form of a room, for the database."""
    return asdict(room)


def room_from_dict(data: dict[str, Any]) -> Room:
    """Inverse of `room_to_dict`."""
    return Room(
        **{
            **data,
            "phase": Phase(data["phase"]),
            "people": tuple(Person(**p) for p in data["people"]),
            "agents": tuple(Agent(**a) for a in data["agents"]),
        }
    )

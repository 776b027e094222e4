"""The recovery diagram's samples (`workers.core.diagram` draws it): the `machine.RECOVERY` rule of every
(recovery state, trigger) pair on a room whose agent's part is in that state, for sample inputs of the
trigger; an edge wherever the state changed."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from workers.core.diagram_samples import (
    ACTIVE_AGENT,
    AGENT,
    CANCELLED,
    COPY,
    NAME,
    PERSON,
    POLICY,
    REFUSED,
    SAMPLE_ROOMS,
    SID,
    STUCK,
    Edge,
    part,
    participant,
)
from workers.core.events import DispatchInfo, Event, EventKind, Fact, JobInfo, ParticipantKind
from workers.core.machine import RECOVERY
from workers.core.recovery import Trigger
from workers.core.room import Deadline, Phase, Policy, Reason, Recovery, Room

# A room waiting for its agent, past its first (join) deadline, in each recovery state; an evicting
# room holds the stalled agent it is removing.
_WAITING = replace(SAMPLE_ROOMS[Phase.WAITING], attempt=1)
_JOIN = {"deadline": Deadline(1, 16.0, Reason.JOIN)}


def _waiting(recovery: Recovery, **view: Any) -> Room:
    return _WAITING.put(replace(part(_WAITING), recovery=recovery, **{**_JOIN, **view}))


RECOVERY_ROOMS: dict[Recovery, Room] = {
    Recovery.NONE: _waiting(Recovery.NONE),
    Recovery.CHECKING: _waiting(Recovery.CHECKING),
    Recovery.EVICTING: replace(
        SAMPLE_ROOMS[Phase.AGENT_PRESENT],
        attempt=1,
        views=(
            replace(
                part(SAMPLE_ROOMS[Phase.AGENT_PRESENT]),
                recovery=Recovery.EVICTING,
                deadline=Deadline(1, 12.0, Reason.ACTIVE),
                evict=AGENT.identity,
            ),
        ),
    ),
    Recovery.REDISPATCHING: _waiting(Recovery.REDISPATCHING, stale_dispatches=("AD_1",)),
    Recovery.FAILED: _waiting(Recovery.FAILED, deadline=None, redispatches=2, error="no agent after 2"),
}

# Where the presence rules leave the room, for the triggers that say so: (who is there, the agent's
# phase and waiting time).
_MOVED: dict[Trigger, tuple[dict[str, Any], dict[str, Any]]] = {
    Trigger.ROOM_IDLE: ({"people": (), "agents": ()}, {"phase": Phase.IDLE, "waiting_since": None}),
    Trigger.PEOPLE_WAITING: ({"people": (PERSON,), "agents": ()}, {"phase": Phase.WAITING}),
    Trigger.AGENT_ARRIVED: ({"people": (PERSON,), "agents": (AGENT,)}, {"phase": Phase.AGENT_PRESENT}),
    Trigger.AGENT_STAYED: ({"people": (PERSON,), "agents": (AGENT,)}, {"phase": Phase.AGENT_PRESENT}),
    Trigger.AGENT_ACTIVE: ({"people": (PERSON,), "agents": (ACTIVE_AGENT,)}, {"phase": Phase.AGENT_ACTIVE}),
    Trigger.AGENT_DOUBLED: ({"people": (PERSON,), "agents": (AGENT, COPY)}, {"phase": Phase.AGENT_PRESENT}),
    Trigger.AGENT_LOST: ({"people": (PERSON,), "agents": ()}, {"phase": Phase.AGENT_LOST}),
    Trigger.ROOM_CLOSED: ({"people": (), "agents": (), "finished_at": 20.0}, {"phase": Phase.CLOSED}),
    Trigger.ROOM_GONE: ({"people": (), "agents": (), "finished_at": 20.0}, {"phase": Phase.CLOSED}),
}

# LiveKit's answer to a check, by what it shows; the changes a variant needs (to who is there, to the
# agent's part).
_ANSWERS: dict[str, tuple[dict[str, Any], dict[str, Any], dict[str, Any]]] = {
    "agent there": ({"participants": ("alice", "agent-1")}, {}, {}),
    "agent stalled": (
        {"participants": ("alice", "agent-1")},
        {"agents": (AGENT,)},
        {"phase": Phase.AGENT_PRESENT, "deadline": Deadline(1, 12.0, Reason.ACTIVE)},
    ),
    "agent stuck": (
        {"participants": ("alice", "agent-1"), "at": 40.0},
        {"agents": (STUCK,)},
        {"phase": Phase.AGENT_PRESENT, "deadline": Deadline(1, 32.0, Reason.STUCK_INITIALIZING)},
    ),
    "two copies": (
        {"participants": ("alice", "agent-1", "agent-2")},
        {"agents": (AGENT, COPY)},
        {"phase": Phase.AGENT_PRESENT, "deadline": Deadline(1, 12.0, Reason.DUPLICATE)},
    ),
    "no agent": ({"participants": ("alice",)}, {}, {}),
    "re-dispatches used up": ({"participants": ("alice",)}, {}, {"redispatches": 2}),
    "job cancelled": ({"participants": ("alice",), "jobs": CANCELLED}, {}, {}),
    "workers full": ({"participants": ("alice",), "jobs": REFUSED}, {}, {"redispatches": 2}),
    "nobody left": ({"participants": ()}, {}, {}),
    "room gone": ({"room_exists": False}, {}, {}),
}


def _moved(room: Room, presence: dict[str, Any], view: dict[str, Any]) -> Room:
    return replace(room, **presence).put(replace(part(room), **view))


def _answer(
    participants: tuple[str, ...] = (),
    room_exists: bool = True,
    at: float = 20.0,
    jobs: tuple[JobInfo, ...] = (),
) -> Fact:
    agents = {a.identity: a for a in (AGENT, COPY)}
    state = "initializing" if at > 20.0 else ""  # the stuck sample's later answer lists it still initializing
    listed = tuple(
        replace(participant(w, agents[w].sid, ParticipantKind.AGENT), state=state)
        if w in agents
        else participant(PERSON.identity, PERSON.sid, ParticipantKind.STANDARD)
        for w in participants
    )
    statuses = tuple(j.status for j in jobs)
    dispatches = (DispatchInfo("AD_1", "notetaker", "{}", 1.0, statuses, jobs=jobs),)
    return Fact(attempt=1, at=at, room_exists=room_exists, participants=listed, dispatches=dispatches)


def recovery_samples(state: Recovery, trigger: Trigger) -> dict[str, tuple[Room, Event]]:
    """Representative inputs of one trigger for a room whose agent's part is in `state`, labelled by
    what they say: Warden's events for the part's attempt (and one for an earlier, stale attempt); the
    room as the presence rules leave it for the other triggers."""
    room = RECOVERY_ROOMS[state]

    def event(fact: Fact) -> Event:
        return Event(f"EV_{trigger}", EventKind(trigger), str(trigger), int(fact.at), SID, NAME, fact=fact)

    if trigger in _MOVED:
        kind = EventKind.RECONCILED if trigger is Trigger.ROOM_GONE else EventKind.OTHER
        other = Event(f"EV_{trigger}", kind, str(kind), 20, SID, NAME, fact=Fact(attempt=1, at=20.0))
        return {"": (_moved(room, *_MOVED[trigger]), other)}
    fact = Fact(attempt=1, at=20.0, dispatch_id="AD_2", error="permission denied")
    samples = {"": (room, event(fact))}
    if trigger is Trigger.PRESENCE_OBSERVED:
        samples = {
            label: (_moved(room, presence, view), event(_answer(**answer)))
            for label, (answer, presence, view) in _ANSWERS.items()
        }
    if trigger not in (
        Trigger.AGENT_RESTARTED,
        Trigger.REDISPATCH_ASKED,
    ):  # for the agent, whatever its attempt
        samples["stale"] = (room, event(replace(fact, attempt=0)))
    return samples


def recovery_edges(policy: Policy = POLICY) -> list[Edge]:
    """(from, to, trigger, what it said) for every sample input that changes the recovery state."""
    found: list[Edge] = []
    for state in Recovery:
        for trigger in Trigger:
            for what, (room, event) in recovery_samples(state, trigger).items():
                after = part(RECOVERY[(state, trigger)](room, part(room), event, policy)).recovery
                if after != state:
                    found.append((state, after, trigger, what))
    return found

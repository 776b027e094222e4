"""Draw the state machines as Mermaid diagrams by running their tables on samples.

Presence: `machine.transition` on a room whose one expected agent sees it in each phase, for sample
events of every kind. Recovery: the `machine.RECOVERY` rule of every (recovery state, trigger) pair on
a room whose agent's part is in that state, for sample inputs of the trigger. Incident: the
`incident.INCIDENT` rule of every (state, signal) pair on an incident in that state, for the sample
reports of `workers.core.incident_samples`. An edge is drawn wherever the state changed.
`python -m workers.core.diagram` prints them; `make diagram` updates the README's copies between their
markers, and a test fails when they differ, so the pictures cannot drift from the rules.
"""

from __future__ import annotations

import re
import sys
from dataclasses import replace
from enum import StrEnum
from pathlib import Path
from typing import Any

from workers.core.diagram_protection import protection_edges, protection_start
from workers.core.events import (
    INTERNAL_KINDS,
    DispatchInfo,
    Event,
    EventKind,
    Fact,
    Job,
    JobInfo,
    JobReason,
    JobStatus,
    Participant,
    ParticipantKind,
)
from workers.core.incident import INCIDENT, IncidentState, Signal
from workers.core.incident_samples import incident_samples
from workers.core.machine import RECOVERY, transition
from workers.core.recovery import Trigger
from workers.core.room import Agent, AgentView, Deadline, Person, Phase, Policy, Reason, Recovery, Room
from workers.core.rules import SETTING, Rules

Edge = tuple[StrEnum, StrEnum, StrEnum, str]  # from, to, the input, what the sample input said

SID, NAME = "RM_sample", "sample"
POLICY = Policy("notetaker")
RULES = Rules.of((), POLICY)  # `WARDEN_AGENT_NAME=notetaker`: the one agent every room expects
PERSON = Person("alice", "PA_alice", 1)
AGENT = Agent("agent-1", "PA_agent", "notetaker", 2)
ACTIVE_AGENT = replace(AGENT, active_at=3)
COPY = Agent("agent-2", "PA_agent2", "notetaker", 9)  # a second copy of the notetaker, later
STUCK = replace(AGENT, state="initializing", state_since=2)  # its `lk.agent.state` since it came
CANCELLED = (JobInfo(JobStatus.CANCELLED),)  # the dispatch's job called off: no failure (`job_signals`)
REFUSED = (JobInfo(JobStatus.PENDING, JobReason.NO_CAPACITY),)  # the workers are full


def sample(phase: Phase, view: dict[str, Any] | None = None, **presence: Any) -> Room:
    """A room (`presence`: who is there) whose agent, the notetaker, sees it in `phase`."""
    agent = AgentView(POLICY.agent_name, (SETTING,), phase, **(view or {}))
    return Room(SID, NAME, watch=None, views=(agent,), **presence)


def part(room: Room) -> AgentView:
    """The sample room's one expected agent's part."""
    return room.views[0]


SAMPLE_ROOMS: dict[Phase, Room] = {
    Phase.IDLE: sample(Phase.IDLE),
    Phase.WAITING: sample(Phase.WAITING, {"waiting_since": 1}, people=(PERSON,)),
    Phase.AGENT_PRESENT: sample(Phase.AGENT_PRESENT, people=(PERSON,), agents=(AGENT,)),
    Phase.AGENT_ACTIVE: sample(Phase.AGENT_ACTIVE, people=(PERSON,), agents=(ACTIVE_AGENT,)),
    Phase.AGENT_LOST: sample(Phase.AGENT_LOST, {"waiting_since": 4}, people=(PERSON,)),
    Phase.CLOSED: sample(Phase.CLOSED, finished_at=5),
    # The room as a whole once LiveKit was asked and named no agent for it: alice is there, none expected.
    Phase.NO_AGENT_EXPECTED: Room(SID, NAME, people=(PERSON,), watch=None),
}
ZERO_CONFIG = Rules.of((), Policy())  # no agent named anywhere: each room's agents are learned from LiveKit


def phase_after(phase: Phase, event: Event) -> Phase:
    """The sample room of `phase` after `event`: as its one expected agent sees it (the notetaker, by
    `RULES`); the room that expects no agent (by `ZERO_CONFIG`) as its row shows it."""
    room = SAMPLE_ROOMS[phase]
    if phase is Phase.NO_AGENT_EXPECTED:
        return transition(room, event, now=0.0, rules=ZERO_CONFIG).room.summary().phase
    return part(transition(room, event, now=0.0, rules=RULES).room).phase


def _participant(identity: str, sid: str, kind: ParticipantKind | None) -> Participant:
    return Participant(
        identity,
        sid,
        None if kind is None else int(kind),
        "notetaker" if identity.startswith("agent-") else "",
    )


def sample_events(kind: EventKind) -> dict[str, Event]:
    """Representative events of one kind, labelled by whom they concern."""
    # A reconciliation listing taken well after the sample joins (within its grace it undoes nothing).
    at = 100 if kind is EventKind.RECONCILED else 10

    def make(participant: Participant | None = None, job: Job | None = None, track: str = "") -> Event:
        fact = Fact(attempt=1, at=float(at)) if kind in INTERNAL_KINDS else None
        return Event(f"EV_{kind}", kind, str(kind), at, SID, NAME, participant, track, job, fact)

    person, agent = PERSON.identity, AGENT.identity
    if kind in (
        EventKind.PARTICIPANT_JOINED,
        EventKind.PARTICIPANT_LEFT,
        EventKind.PARTICIPANT_CONNECTION_ABORTED,
    ):
        sid = "PA_bob" if kind is EventKind.PARTICIPANT_JOINED else PERSON.sid
        who = "bob" if kind is EventKind.PARTICIPANT_JOINED else person
        return {
            "person": make(_participant(who, sid, ParticipantKind.STANDARD)),
            "agent": make(_participant(agent, AGENT.sid, ParticipantKind.AGENT)),
        }
    if kind in (EventKind.TRACK_PUBLISHED, EventKind.TRACK_UNPUBLISHED, EventKind.HEARTBEAT):
        return {"agent": make(_participant(agent, AGENT.sid, None), track="TR_1")}
    if kind in (EventKind.AGENT_JOB_STARTED, EventKind.AGENT_JOB_PENDING, EventKind.AGENT_JOB_ENDED):
        return {"": make(job=Job("AJ_1", "notetaker", "AD_1", 1, agent))}
    return {"": make()}


# A room with no agent named anywhere, whose own watch asks LiveKit at its join deadline (alice waits).
_WATCHING = Room(
    SID,
    NAME,
    people=(PERSON,),
    attempt=1,
    watch=AgentView(
        phase=Phase.WAITING,
        waiting_since=1,
        deadline=Deadline(1, 16.0, Reason.JOIN),
        recovery=Recovery.CHECKING,
    ),
)
_ALICE = _participant(PERSON.identity, PERSON.sid, ParticipantKind.STANDARD)


def _watch_answered() -> Event:
    """LiveKit's answer to the room's own watch: alice, and no dispatch."""
    fact = Fact(attempt=1, at=20.0, participants=(_ALICE,))
    return Event("EV_answer", EventKind.PRESENCE_OBSERVED, "presence_observed", 20, SID, NAME, fact=fact)


def _later_dispatch() -> Event:
    """Reconciliation's listing of the room that expects no agent: alice, and a dispatch made since."""
    dispatch = DispatchInfo("AD_1", "notetaker", created_at=50.0)
    fact = Fact(at=100.0, participants=(_ALICE,), dispatches=(dispatch,))
    return Event("EV_listed", EventKind.RECONCILED, "reconciled", 100, SID, NAME, fact=fact)


def _discovered() -> list[Edge]:
    """The room's own watch answered: the agents LiveKit names are expected, or none is; and a room that
    expects none learns a dispatch made later from a listing."""
    found: list[Edge] = []
    after = transition(_WATCHING, _watch_answered(), now=0.0, rules=ZERO_CONFIG).room.summary().phase
    found.append((Phase.WAITING, after, EventKind.PRESENCE_OBSERVED, "no agent named"))
    none = SAMPLE_ROOMS[Phase.NO_AGENT_EXPECTED]
    after = transition(none, _later_dispatch(), now=0.0, rules=ZERO_CONFIG).room.summary().phase
    found.append((Phase.NO_AGENT_EXPECTED, after, EventKind.RECONCILED, "dispatch listed"))
    return found


def edges() -> list[Edge]:
    """(from, to, event kind, whom) for every sample event that changes the phase."""
    found: list[Edge] = []
    for phase in SAMPLE_ROOMS:
        for kind in EventKind:
            for who, event in sample_events(kind).items():
                after = phase_after(phase, event)
                if after != phase:
                    found.append((phase, after, kind, who))
    return found + _discovered()


# --- recovery -------------------------------------------------------------------------------------

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
        replace(_participant(w, agents[w].sid, ParticipantKind.AGENT), state=state)
        if w in agents
        else _participant(PERSON.identity, PERSON.sid, ParticipantKind.STANDARD)
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


def incident_edges() -> list[Edge]:
    """(from, to, signal, what it said) for every sample report that changes the incident's state (the
    samples "in maintenance" only repeat others' edges: a marked incident changes state less)."""
    found: list[Edge] = []
    for state in IncidentState:
        for signal in Signal:
            for what, (incident, report, policy) in incident_samples(state, signal).items():
                if what == "in maintenance":
                    continue
                after = INCIDENT[(state, signal)](incident, report, policy).incident.state
                if after != state:
                    found.append((state, after, signal, what))
    return found


def _arrows(found: list[Edge]) -> list[str]:
    """One arrow per (from, to), labelled by its inputs in table order, variants in brackets."""
    labels: dict[tuple[StrEnum, StrEnum], dict[StrEnum, list[str]]] = {}
    for a, b, key, what in found:
        variants = labels.setdefault((a, b), {}).setdefault(key, [])
        if what and what not in variants:
            variants.append(what)
    return [
        f"    {a} --> {b}: " + ", ".join(f"{k} ({' / '.join(v)})" if v else str(k) for k, v in inputs.items())
        for (a, b), inputs in labels.items()
    ]


def mermaid() -> str:
    """The presence diagram as Mermaid source."""
    lines = ["stateDiagram-v2", f"    [*] --> {Phase.IDLE}"]
    lines += _arrows(edges())
    lines.append(f"    {Phase.CLOSED} --> [*]")
    return "\n".join(lines)


def recovery_mermaid() -> str:
    """The recovery diagram as Mermaid source."""
    lines = ["stateDiagram-v2", f"    [*] --> {Recovery.NONE}"]
    lines += _arrows(recovery_edges())
    return "\n".join(lines)


def incident_mermaid() -> str:
    """The incident diagram as Mermaid source."""
    lines = ["stateDiagram-v2", f"    [*] --> {IncidentState.NEW}"]
    lines += _arrows(incident_edges())
    lines.append(f"    {IncidentState.RESOLVED} --> [*]")
    return "\n".join(lines)


def protection_mermaid() -> str:
    """The protection diagram (`workers.core.fallback`) as Mermaid source."""
    return "\n".join(["stateDiagram-v2", f"    [*] --> {protection_start()}", *_arrows(protection_edges())])


DIAGRAMS = {
    "presence": mermaid,
    "recovery": recovery_mermaid,
    "incident": incident_mermaid,
    "protection": protection_mermaid,
}


def block(name: str) -> str:
    """The README's copy of one diagram, with its markers."""
    return f"<!-- diagram:{name}:start -->\n```mermaid\n{DIAGRAMS[name]()}\n```\n<!-- diagram:{name}:end -->"


def update_readme(path: Path) -> None:
    """Replace each diagram between the README's `diagram:NAME:start` / `diagram:NAME:end` markers."""
    text = path.read_text()
    for name in DIAGRAMS:
        found = re.search(rf"<!-- diagram:{name}:start -->.*?<!-- diagram:{name}:end -->", text, re.S)
        if found is None:
            raise SystemExit(f"{path} has no markers for the {name} diagram")
        text = text[: found.start()] + block(name) + text[found.end() :]
    path.write_text(text)


if __name__ == "__main__":
    if sys.argv[1:]:
        update_readme(Path(sys.argv[1]))
    else:
        print("\n\n".join(DIAGRAMS[name]() for name in DIAGRAMS))

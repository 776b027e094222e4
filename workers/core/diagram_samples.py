"""The sample rooms the diagrams (`workers.core.diagram`) and the tables' tests run the rules on: a room
whose one expected agent, the notetaker, sees it in each phase, and the people and agents in them."""

from __future__ import annotations

from dataclasses import replace
from enum import StrEnum
from typing import Any

from workers.core.events import JobInfo, JobReason, JobStatus, Participant, ParticipantKind
from workers.core.room import Agent, AgentView, Person, Phase, Policy, Room
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


def participant(identity: str, sid: str, kind: ParticipantKind | None) -> Participant:
    return Participant(
        identity,
        sid,
        None if kind is None else int(kind),
        "notetaker" if identity.startswith("agent-") else "",
    )

"""The room state machine's values: phases, policy, the room, and the actions a decision asks for.

All frozen dataclasses, all plain data: `workers.core.machine` computes with them, `workers.store.writer`
saves them as JSON, the effects layer carries the actions out.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from workers.core.plain import as_dict, tagged


class Phase(StrEnum):
    """Who is in the room (derived from presence, see `rooms._next_phase`)."""

    IDLE = "idle"
    WAITING = "waiting"
    AGENT_PRESENT = "agent_present"
    AGENT_ACTIVE = "agent_active"
    AGENT_LOST = "agent_lost"
    CLOSED = "closed"


class Recovery(StrEnum):
    """What Warden is doing about the room's agent."""

    NONE = "none"  # watching (a deadline may be set)
    CHECKING = "checking"  # a deadline passed; asking LiveKit who is there
    EVICTING = "evicting"  # removing a stalled agent before re-dispatching
    REDISPATCHING = "redispatching"  # deleting stale dispatches and creating a new one
    FAILED = "failed"  # re-dispatches exhausted or LiveKit refused: escalated, no more attempts


class Reason(StrEnum):
    """Why a deadline was set."""

    JOIN = "join"  # people arrived, no agent yet
    REJOIN = "rejoin"  # the agent left while people remain
    ACTIVE = "active"  # the agent joined but has not published or sent a heartbeat
    CONFIRM = "confirm"  # Warden re-dispatched; has the new agent arrived?


@dataclass(frozen=True)
class Policy:
    """What the machine is told from outside (from settings, as plain values)."""

    agent_name: str = ""
    join_sla: float = 15.0
    rejoin_sla: float = 20.0
    active_sla: float | None = None
    max_redispatches: int = 2
    sla_from_room_start: bool = False
    dispatch_on_start: bool = False
    restart_grace: float = 20.0
    discovering: bool = False  # the room's watch before its agents are known: no agent is "ours"

    def counts(self, agent_name: str) -> bool:
        """Is an agent of this name "ours"? An agent that gives no name counts, so none is double-booked."""
        if self.discovering:
            return False
        return not self.agent_name or not agent_name or agent_name == self.agent_name


@dataclass(frozen=True)
class Person:
    identity: str
    sid: str
    joined_at: float


@dataclass(frozen=True)
class Agent:
    identity: str
    sid: str
    name: str
    joined_at: float
    active_at: float | None = None


@dataclass(frozen=True)
class Deadline:
    attempt: int
    at: float
    reason: Reason


@dataclass(frozen=True)
class AgentView:
    sid: str
    name: str
    phase: Phase = Phase.IDLE
    people: tuple[Person, ...] = ()
    agents: tuple[Agent, ...] = ()
    started_at: float | None = None
    finished_at: float | None = None
    first_person_at: float | None = None
    agent_joined_at: float | None = None
    waiting_since: float | None = None
    updated_at: float = 0.0
    # recovery
    deadline: Deadline | None = None
    attempt: int = 0
    recovery: Recovery = Recovery.NONE
    redispatches: int = 0
    stale_dispatches: tuple[str, ...] = ()
    dispatch_metadata: str = ""
    dispatch_id: str = ""
    evict: str = ""
    error: str = ""
    dispatched_on_start: bool = False
    # which agent this view of the room watches ("" : the room's own watch, see `workers.core.agents`)
    agent: str = ""
    sources: tuple[str, ...] = ()  # where Warden learned that the room expects it: dispatch, job, rule
    dispatch_attributes: tuple[tuple[str, str], ...] = ()
    sip: bool = False  # a phone caller has been in the room

    def our_agents(self, policy: Policy) -> tuple[Agent, ...]:
        return tuple(a for a in self.agents if policy.counts(a.name))


@dataclass(frozen=True)
class ScheduleDeadline:
    """Fire `DEADLINE_PASSED(attempt)` at `at` (a deferred job with a deterministic id)."""

    attempt: int
    at: float
    reason: Reason
    agent: str = ""


@dataclass(frozen=True)
class CheckPresence:
    """Ask LiveKit who is in the room and which dispatches exist; answer with PRESENCE_OBSERVED."""

    attempt: int
    agent: str = ""


@dataclass(frozen=True)
class Evict:
    """Remove a stalled agent from the room; answer with AGENT_EVICTED."""

    attempt: int
    identity: str
    agent: str = ""


@dataclass(frozen=True)
class Redispatch:
    """Delete stale dispatches, create one new dispatch; answer with AGENT_DISPATCHED."""

    attempt: int
    agent_name: str
    metadata: str
    stale: tuple[str, ...]
    attributes: tuple[tuple[str, str], ...] = ()

    @property
    def agent(self) -> str:
        return self.agent_name


@dataclass(frozen=True)
class Dispatch:
    """Create the room's first dispatch (`WARDEN_DISPATCH_ON_START`)."""

    agent_name: str

    @property
    def agent(self) -> str:
        return self.agent_name


@dataclass(frozen=True)
class Expect:
    """The room expects this agent (`source`: dispatch, job or rule): recorded in its timeline."""

    agent: str
    source: str


@dataclass(frozen=True)
class Escalate:
    """Re-dispatching cannot help this room: hand it to escalation (restart, deploy hook, alert)."""

    reason: str
    redispatches: int
    agent: str = ""


@dataclass(frozen=True)
class ReportBreach:
    """The room missed its SLA (`reason`: the deadline's reason): count it towards an outage."""

    reason: str
    agent: str = ""


@dataclass(frozen=True)
class ReportRecovered:
    """A room that had missed its SLA no longer needs an agent (`outcome`: its phase now)."""

    outcome: str
    agent: str = ""


Action = (
    ScheduleDeadline
    | CheckPresence
    | Evict
    | Redispatch
    | Dispatch
    | Expect
    | Escalate
    | ReportBreach
    | ReportRecovered
)


@dataclass(frozen=True)
class Decision:
    room: AgentView
    actions: tuple[Action, ...] = ()


def action_to_dict(action: Action) -> dict[str, Any]:
    """An action as JSON for the room's timeline: its type and fields."""
    return tagged(action)


def room_to_dict(room: AgentView) -> dict[str, Any]:
    """Plain JSON-able form of a room, for the database."""
    return as_dict(room)


def time_to_agent(room: AgentView) -> float | None:
    """Seconds people waited for the room's first agent (0 when the agent was there first)."""
    if room.agent_joined_at is None or room.first_person_at is None:
        return None
    return max(0.0, room.agent_joined_at - room.first_person_at)

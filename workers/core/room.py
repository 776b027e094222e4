"""The room state machine's values: phases, policy, the room and each expected agent's part of it, and
the actions a decision asks for.

All frozen dataclasses, all plain data: `workers.core.machine` computes with them, `workers.core.stored`
turns a room into the JSON its row holds and back, the effects layer carries the actions out.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, ClassVar

from workers.core.phases import Phase as Phase
from workers.core.phases import Reason as Reason
from workers.core.phases import Recovery as Recovery
from workers.core.plain import tagged
from workers.core.protecting import Protecting, Protection

# People are there and no agent of ours: the phases in which a room waits for its agent.
WAITING_PHASES = (Phase.WAITING, Phase.AGENT_LOST)
# A room's state in its row, the API and the dashboard (`Room.state`): its phase, or `fallback`.
FALLBACK_STATE = "fallback"
ROOM_STATES = (*(str(p) for p in Phase), FALLBACK_STATE)


@dataclass(frozen=True)
class Policy:
    """What the machine is told from outside (from settings and the room's rule, as plain values)."""

    agent_name: str = ""
    join_sla: float = 15.0
    rejoin_sla: float = 20.0
    active_sla: float | None = None
    max_redispatches: int = 2
    sla_from_room_start: bool = False
    dispatch_on_start: bool = False
    restart_grace: float = 20.0
    people_listed: int = 200  # people a room lists by identity; the rest are counted (`Room.people_unlisted`)
    discovering: bool = False  # the room's own watch before its agents are known: no agent is "ours"
    # how long an agent may stay in its `lk.agent.state` of `initializing` / `thinking` while people are
    # there before it counts as stalled (None: not judged by that state; `workers.core.liveness`)
    stuck_initializing: float | None = 30.0
    stuck_thinking: float | None = 60.0
    fallback_agent: str = (
        ""  # protecting the person (`workers.core.fallback`): dispatched to the room in its agent's place
    )
    fallback_after: float | None = None  # seconds of waiting with its incident open (None: twice join_sla)
    fallback_stays: bool = False  # the fallback agent stays when the expected one comes after all
    fallback_transfer_to: str = field(default="", repr=False)  # a SIP caller goes there (personal data)
    notify_room: bool = False  # the room is told on topic `warden.status`
    spared: frozenset[str] = frozenset()  # the part's `AgentView.spared`: not ours (`observing`, rule 1)
    observing: bool = False  # observe mode (`Rules.observe`): only then is a part's `spared` not ours

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
    state: str = ""  # its `lk.agent.state` as Warden last saw it ("" : never published, or not seen yet)
    state_since: float | None = None  # when Warden first saw it in that state (LiveKit gives no time)


@dataclass(frozen=True)
class Deadline:
    attempt: int
    at: float
    reason: Reason


@dataclass(frozen=True)
class AgentView:
    """One expected agent's part of a room: the phase as that agent sees who is there, and what Warden
    is doing about that agent. Who is there is the room's, held once (`Room`)."""

    agent: str = ""  # its name ("" : the room's own watch, or an agent that gives no name)
    sources: tuple[str, ...] = ()  # where Warden learned that the room expects it: dispatch, job, rule
    phase: Phase = Phase.IDLE
    waiting_since: float | None = None  # when people started waiting for it (waiting, agent_lost)
    agent_joined_at: float | None = None  # when it first came
    # recovery
    deadline: Deadline | None = None
    recovery: Recovery = Recovery.NONE
    redispatches: int = 0  # in the incident under way, bounded by `max_redispatches`; reset when one comes
    # the deadline attempts at which Warden re-dispatched it in this room, ever (decided, or answered): the
    # timeline's Redispatch and agent_dispatched lines, which neither its arrival nor a re-fold undoes
    redispatched: tuple[int, ...] = ()
    stale_dispatches: tuple[str, ...] = ()
    dispatch_metadata: str = ""
    dispatch_attributes: tuple[tuple[str, str], ...] = ()
    dispatch_id: str = ""  # its dispatch live now: the one Warden made last, or the newest a listing named
    dispatched_at: float | None = None  # when Warden made its last dispatch (an operator's 409 reads it)
    evict: str = ""
    error: str = ""
    dispatched_on_start: bool = False
    # LiveKit's job signals at its last check (`workers.core.job_signals`): its job refused for want of
    # capacity, and the (dispatch, worker) of each job a worker took whose agent did not come
    full: bool = False
    unjoined: tuple[tuple[str, str], ...] = ()
    let_go: str = ""  # the dispatch whose job an `agent_job_ended` said was meant to end (cancelled...)
    # `workers.core.fallback`: when its incident was known open, the fallback taken in this outage, why,
    # the fallback agent sent and the one to remove when ours comes ("" : it stays), what the room was told
    outage_at: float | None = None
    fallback: Protection = Protection.NONE
    fallback_reason: str = ""
    fallback_to: str = ""
    fallback_agent: str = ""
    told: str = ""
    told_at: float | None = None
    # `workers.core.sli`: when the join SLA of its people's wait ends (kept once it ran out without it)
    due_at: float | None = None
    spared: tuple[str, ...] = ()  # agents observe mode would have removed: as good as gone (`observing`)


@dataclass(frozen=True)
class Room:
    """A room: who is there, held once, and a part per expected agent (`views`). Until the agents it
    expects are known, the room's own `watch` (counting no agent as ours) waits for people to wait;
    it is None once they are learned."""

    sid: str
    name: str
    people: tuple[Person, ...] = ()
    agents: tuple[Agent, ...] = ()
    # people present beyond the policy's `people_listed`: counted, not listed (a big room's state stays
    # small; what Warden decides needs only whether someone is there and who the agents are)
    people_unlisted: int = 0
    started_at: float | None = None
    finished_at: float | None = None
    first_person_at: float | None = None
    sip: bool = False  # a phone caller has been in the room
    updated_at: float = 0.0
    attempt: int = 0  # the newest deadline's number: numbered room-wide, it only goes up
    watch: AgentView | None = AgentView()
    views: tuple[AgentView, ...] = ()  # one per expected agent, in the order learned

    @property
    def learned(self) -> bool:
        """LiveKit was asked, or a rule named the agents: the room's own watch is over."""
        return self.watch is None

    @property
    def someone_here(self) -> bool:
        """A person is present (listed or only counted)."""
        return bool(self.people) or self.people_unlisted > 0

    def our_agents(self, policy: Policy) -> tuple[Agent, ...]:
        return tuple(a for a in self.agents if policy.counts(a.name) and a.identity not in policy.spared)

    def copies(self, policy: Policy) -> tuple[Agent, ...]:
        """The agents in the room that give exactly the name of the agent `policy` is for, earliest
        first (arrival order on a tie: webhook times are whole seconds). More than one is a double."""
        if not policy.agent_name or policy.discovering:
            return ()
        named = [a for a in self.agents if a.name == policy.agent_name and a.identity not in policy.spared]
        return tuple(sorted(named, key=lambda a: a.joined_at))

    def watchers(self) -> tuple[AgentView, ...]:
        """Every part that can have a deadline: the room's own watch while it watches, then the agents'."""
        return self.views if self.watch is None else (self.watch, *self.views)

    def view(self, agent: str) -> AgentView | None:
        return next((v for v in self.views if v.agent == agent), None)

    def for_attempt(self, attempt: int) -> AgentView | None:
        """The part whose deadline has this number (none: a timer or an answer that is stale)."""
        return next(
            (v for v in self.watchers() if v.deadline is not None and v.deadline.attempt == attempt), None
        )

    def view_for(self, agent: str) -> AgentView:
        """The part an action about `agent` is carried out for. An action recorded before views existed
        names no agent: the room's first expected agent's (or its own watch); an agent no longer
        expected has a blank part."""
        found = self.view(agent)
        if found is not None:
            return found
        if not agent and self.views:
            return self.views[0]
        if not agent and self.watch is not None:
            return self.watch
        return AgentView(agent)

    def put(self, view: AgentView) -> Room:
        """The room with `view` in place of the part of the same agent: its own watch for "" while it
        watches (no expected agent is nameless then: a job event names its agent, and a listing of
        nameless dispatches is learned only once the watch is over)."""
        if self.watch is not None and not view.agent:
            return replace(self, watch=view)
        return replace(self, views=tuple(view if v.agent == view.agent else v for v in self.views))

    def summary(self) -> AgentView:
        """The part most in need of an agent (the room's own watch while no agent is known): what the
        room's row shows as its phase and recovery. A room that expects no agent shows as
        no_agent_expected while people are in it (nobody waits for an agent), idle once nobody is."""
        watching = self.watchers()
        if not watching:
            if self.finished_at is not None:
                return AgentView(phase=Phase.CLOSED)
            return AgentView(phase=Phase.NO_AGENT_EXPECTED if self.someone_here else Phase.IDLE)
        return min(watching, key=lambda v: (_URGENCY[v.recovery], _NEED[v.phase]))

    def state(self) -> str:
        """Its row's state: `fallback` once one was taken for its neediest agent, else its phase."""
        shown = self.summary()
        taken = shown.fallback is not Protection.NONE and shown.phase in WAITING_PHASES
        return FALLBACK_STATE if taken else str(shown.phase)

    def next_deadline(self) -> float | None:
        return min((v.deadline.at for v in self.watchers() if v.deadline is not None), default=None)


_NEED = {
    Phase.AGENT_LOST: 0,
    Phase.WAITING: 1,
    Phase.AGENT_PRESENT: 2,
    Phase.AGENT_ACTIVE: 3,
    Phase.NO_AGENT_EXPECTED: 4,
    Phase.IDLE: 5,
    Phase.CLOSED: 6,
}
_URGENCY = {
    Recovery.FAILED: 0,
    Recovery.REDISPATCHING: 1,
    Recovery.EVICTING: 2,
    Recovery.CHECKING: 3,
    Recovery.NONE: 4,
}


def time_to_agent(room: Room, view: AgentView) -> float | None:
    """Seconds people waited for `view`'s agent (0 when the agent was there first)."""
    if view.agent_joined_at is None or room.first_person_at is None:
        return None
    return max(0.0, view.agent_joined_at - room.first_person_at)


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
    """Create the room's first dispatch of an agent (`WARDEN_DISPATCH_ON_START`)."""

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
class ReportFailed:
    """Re-dispatching cannot help this room: its failure is reported to its agent's incident (a
    restart of the deployment, alerts)."""

    FORMERLY: ClassVar[tuple[str, ...]] = ("Escalate",)  # its name in rows and jobs before issue 22

    reason: str
    redispatches: int
    agent: str = ""


@dataclass(frozen=True)
class ReportBreach:
    """The room missed its SLA (`reason`: the deadline's reason): count it towards an outage — or, when
    LiveKit refused its job for want of capacity (`full`), towards the agent's capacity incident.
    `unjoined`: (dispatch, worker) of the jobs workers took for it whose agent did not come."""

    reason: str
    agent: str = ""
    full: bool = False
    unjoined: tuple[tuple[str, str], ...] = ()


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
    | ReportFailed
    | ReportBreach
    | ReportRecovered
    | Protecting
)


@dataclass(frozen=True)
class Decision:
    room: Room
    actions: tuple[Action, ...] = ()


def action_to_dict(action: Action) -> dict[str, Any]:
    """An action as JSON for the room's timeline: its type and fields."""
    return tagged(action)

"""The agent's own state: agents built on LiveKit's agents framework publish it as the participant
attribute `lk.agent.state` (`initializing`, `idle`, `listening`, `thinking`, `speaking`). Pure, like
`workers.core.machine`, whose recovery rules ask this module when an agent is stuck.

The rules, in plain words:

1. No webhook reports an attribute's change, so Warden sees the state only when it lists the room's
   participants (a deadline's check, reconciliation, the liveness look) or in a join's webhook. An
   agent's state is "since" when Warden first saw it in that state (LiveKit stamps no time on
   attributes): a look that finds it unchanged keeps the time, one that finds another state restarts it.
2. `initializing` held for the policy's `stuck_initializing` seconds, or `thinking` for
   `stuck_thinking`, while people are in the room, is a stall (`Reason.STUCK_INITIALIZING`,
   `Reason.STUCK_THINKING`): the agent is removed and re-dispatched as a stalled one is. `listening`,
   `idle` and `speaking` are healthy; an agent that never publishes the attribute is judged as before
   (joined, active, heartbeat). None (a rule's 0) turns a state's rule off.
3. A stuck deadline is set at the state's "since" plus its limit; when it passes Warden asks LiveKit
   first, and acts only if the agent is still in a stuck state past its limit by what LiveKit lists then.
   A replacement has a state clock of its own.
4. The liveness look (`workers.jobs.rooms.liveness`) is there to find stuck agents: an agent it finds
   turned from one state no rule limits to another (`listening`, `idle`, `speaking`: a conversation's
   ordinary turns) is no news to it (`quiet_turns`), and nothing is written for it; a turn into or out
   of `initializing` or `thinking`, or anything else new in the room, is recorded as seen. The state
   Warden shows is then the last one recorded: a turn between the quiet states shows at the room's next
   recorded change (a check, reconciliation, a webhook), not at every look.
5. A look's outcome at a room whose every expected agent is present (`agent_present`, `agent_active`),
   whose own watch is over, and whose listing names everyone Warden knows there (`steady`) does not
   depend on when the look is taken: the state machine reads the time of such a listing only where it
   changes the room (a new participant, a new state, a deadline set, a wait begun or ended), and whoever
   Warden knows is listed, so nobody is kept for having joined just before the listing. A look that
   found such a room as Warden knows it finds it so again from the same listing while the room is
   unchanged; the liveness cron does not ask the state machine again then (`workers.jobs.rooms.looked`).
"""

from __future__ import annotations

from dataclasses import replace

from workers.core.events import Participant
from workers.core.room import Agent, Phase, Policy, Reason, Room

INITIALIZING = "initializing"
THINKING = "thinking"
STATES = ("initializing", "idle", "listening", "thinking", "speaking")
STUCK_REASONS = (Reason.STUCK_INITIALIZING, Reason.STUCK_THINKING)
QUIET_STATES = frozenset(("idle", "listening", "speaking"))  # no rule limits them (rule 4)
_HERE = (Phase.AGENT_PRESENT, Phase.AGENT_ACTIVE)
_REASON = {INITIALIZING: Reason.STUCK_INITIALIZING, THINKING: Reason.STUCK_THINKING}


def limit(state: str, policy: Policy) -> float | None:
    """How long an agent may stay in `state` (None: as long as it likes)."""
    if state == INITIALIZING:
        return policy.stuck_initializing
    if state == THINKING:
        return policy.stuck_thinking
    return None


def seen(agent: Agent, state: str, at: float) -> Agent:
    """`agent` as a listing (or a join) taken at `at` shows it in `state`: since `at` if that is news."""
    if state == agent.state:
        return agent
    return replace(agent, state=state, state_since=at if state else None)


def _due(agent: Agent, policy: Policy) -> tuple[float, Reason] | None:
    allowed = limit(agent.state, policy)
    if allowed is None or agent.state_since is None:
        return None
    return agent.state_since + allowed, _REASON[agent.state]


def stuck_due(room: Room, policy: Policy) -> tuple[float, Reason] | None:
    """When the first of our agents in a stuck-prone state would be stuck, and why; None when none is,
    or nobody is in the room (an agent alone may think as long as it likes)."""
    if not room.someone_here:
        return None
    due = [d for d in (_due(a, policy) for a in room.our_agents(policy)) if d is not None]
    return min(due, default=None)


def stuck_agent(room: Room, policy: Policy, at: float) -> Agent | None:
    """The first of our agents stuck at `at` (in a stuck-prone state past its limit), if any."""
    for agent in room.our_agents(policy):
        due = _due(agent, policy)
        if due is not None and due[0] <= at:
            return agent
    return None


def quiet_turns(room: Room, listed: tuple[Participant, ...]) -> tuple[Participant, ...]:
    """`listed` (a look's listing of the room) with each agent that only turned between two quiet states
    since Warden last recorded it shown in the state Warden knows (rule 4): compared with the room, such
    a listing is no news."""
    known = {(a.identity, a.sid): a.state for a in room.agents}

    def as_known(p: Participant) -> Participant:
        was = known.get((p.identity, p.sid))
        if was is not None and was != p.state and was in QUIET_STATES and p.state in QUIET_STATES:
            return replace(p, state=was)
        return p

    return tuple(as_known(p) for p in listed)


def steady(room: Room, listed: tuple[Participant, ...]) -> bool:
    """Is a look at `room` that lists `listed` one whose outcome does not depend on when it is taken
    (rule 5)? The room is open, its own watch is over, each of its expected agents is present, and
    everyone Warden knows in it is listed."""
    if room.finished_at is not None or room.watch is not None or not room.views:
        return False
    if any(view.phase not in _HERE for view in room.views):
        return False
    names = {p.identity for p in listed}
    return all(p.identity in names for p in room.people) and all(a.identity in names for a in room.agents)

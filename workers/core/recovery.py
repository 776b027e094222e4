"""The recovery rules of the room state machine: what Warden does about a room's agent (`Recovery`).
Pure, like `workers.core.machine`, whose `RECOVERY` table says for which (recovery state, `Trigger`)
pair each rule applies; the rules are stated in plain words at the top of that module.

The sub-machine moves on two kinds of input. Warden's own events (a deadline passing, LiveKit's answer
to "who is there", the outcome of an evict or a dispatch, LiveKit refusing a call, the agent restarted)
reach it through the presence table, in the phases where they can matter. And after every event, where
the presence rules left the room (people waiting, an agent arrived, the room idle or closed...) is one
more trigger, so that deadlines follow presence. Each rule gets the room after the presence step.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from enum import StrEnum
from functools import wraps

from workers.core.events import Event, Fact
from workers.core.presence import reconcile
from workers.core.room import AgentView, Deadline, Policy, Reason, Recovery
from workers.core.table import Handler


class Trigger(StrEnum):
    """What moves the recovery sub-machine."""

    # Warden's own events (named as their `EventKind`)
    DEADLINE_PASSED = "deadline_passed"
    PRESENCE_OBSERVED = "presence_observed"
    AGENT_EVICTED = "agent_evicted"
    AGENT_DISPATCHED = "agent_dispatched"
    UPSTREAM_FAILED = "upstream_failed"
    AGENT_RESTARTED = "agent_restarted"
    # where the presence rules left the room, after every event
    ROOM_IDLE = "room_idle"  # nobody there
    PEOPLE_WAITING = "people_waiting"  # waiting: people, no agent has come
    AGENT_ARRIVED = "agent_arrived"  # agent_present, entered just now
    AGENT_STAYED = "agent_stayed"  # agent_present, as before
    AGENT_ACTIVE = "agent_active"
    AGENT_LOST = "agent_lost"
    ROOM_CLOSED = "room_closed"  # by `room_finished`, or closed already
    ROOM_GONE = "room_gone"  # closed by reconciliation: LiveKit no longer has the room


Step = Callable[[AgentView, Fact, Deadline, Policy], AgentView]
# Seconds a dispatch just made is given before it counts as stale: livekit-server assigns it within
# moments and its agent joins within about a second, although `ListDispatch` shows the job only ~5 s on.
DISPATCH_GRACE = 2.0


def for_current_attempt(step: Step) -> Handler:
    """`step` for the attempt the room is on; a timer or an answer for another attempt (late, repeated,
    or from before the room moved on) is stale and changes nothing."""

    @wraps(step)
    def rule(room: AgentView, event: Event, policy: Policy) -> AgentView:
        fact, deadline = event.fact, room.deadline
        if fact is None or deadline is None or fact.attempt != deadline.attempt:
            return room
        return step(room, fact, deadline, policy)

    return rule


# --- Warden's own events ----------------------------------------------------------------------------


@for_current_attempt
def ask_livekit(room: AgentView, fact: Fact, deadline: Deadline, policy: Policy) -> AgentView:
    """Ask LiveKit before acting (an early timer waits for its time)."""
    return room if fact.at < deadline.at else replace(room, recovery=Recovery.CHECKING)


@for_current_attempt
def act_on_answer(room: AgentView, fact: Fact, deadline: Deadline, policy: Policy) -> AgentView:
    """LiveKit's answer, trusted over the webhooks: nothing to do, evict a stalled agent, re-dispatch,
    or give up when the re-dispatches are used up."""
    if not fact.room_exists:
        return replace(room, finished_at=fact.at, people=(), agents=(), recovery=Recovery.NONE, deadline=None)
    room = reconcile(room, fact.participants, fact.at)
    ours = room.our_agents(policy)
    stalled = deadline.reason is Reason.ACTIVE and bool(ours) and all(a.active_at is None for a in ours)
    if (ours and not stalled) or not room.people:
        return replace(room, recovery=Recovery.NONE, deadline=None)
    if room.redispatches >= policy.max_redispatches:
        return _failed(room, f"no agent after {room.redispatches} re-dispatch(es)")
    mine = sorted(
        (d for d in fact.dispatches if d.agent_name == policy.agent_name), key=lambda d: d.created_at
    )
    young = [
        d.created_at for d in mine if not d.statuses and fact.at - DISPATCH_GRACE < d.created_at <= fact.at
    ]
    if young and not stalled:
        # LiveKit may be assigning that dispatch right now: deleting it would leave its agent orphaned
        # beside the new one. Look again once it has had its time.
        waiting = replace(room, recovery=Recovery.NONE)
        return _with_deadline(waiting, max(young) + DISPATCH_GRACE, deadline.reason)
    metadata = mine[0].metadata if mine else room.dispatch_metadata
    attributes = mine[0].attributes if mine else room.dispatch_attributes
    room = replace(
        room,
        stale_dispatches=tuple(d.id for d in mine),
        dispatch_metadata=metadata,
        dispatch_attributes=attributes,
    )
    if stalled:
        return replace(room, recovery=Recovery.EVICTING, evict=ours[0].identity)
    return replace(room, recovery=Recovery.REDISPATCHING)


@for_current_attempt
def redispatch(room: AgentView, fact: Fact, deadline: Deadline, policy: Policy) -> AgentView:
    """The stalled agent is out: re-dispatch."""
    agents = tuple(a for a in room.agents if a.identity != room.evict)
    return replace(room, agents=agents, evict="", recovery=Recovery.REDISPATCHING)


@for_current_attempt
def confirm(room: AgentView, fact: Fact, deadline: Deadline, policy: Policy) -> AgentView:
    """A new dispatch: confirm it with a deadline, `join_sla` doubled per re-dispatch already made."""
    count = room.redispatches + 1
    attempt = room.attempt + 1
    return replace(
        room,
        recovery=Recovery.NONE,
        redispatches=count,
        dispatch_id=fact.dispatch_id,
        stale_dispatches=(),
        attempt=attempt,
        deadline=Deadline(attempt, fact.at + policy.join_sla * 2 ** (count - 1), Reason.CONFIRM),
    )


@for_current_attempt
def give_up(room: AgentView, fact: Fact, deadline: Deadline, policy: Policy) -> AgentView:
    """LiveKit refused a call (4xx): the room is failed, escalated, not retried."""
    return _failed(room, f"LiveKit refused: {fact.error}")


def _failed(room: AgentView, reason: str) -> AgentView:
    return replace(room, recovery=Recovery.FAILED, error=reason, deadline=None, evict="", stale_dispatches=())


def fresh_start(room: AgentView, event: Event, policy: Policy) -> AgentView:
    """The agent was restarted (an outage's escalation) while people wait for it (the presence table
    passes the restart on in waiting and agent_lost only): a fresh start, a confirm deadline once the
    restart has had `restart_grace` to bring workers up — or the event's own `wait`, when that is
    shorter (0: its deployment reports running replicas, re-check at once)."""
    if event.fact is None:
        return room
    attempt = room.attempt + 1
    wait = policy.restart_grace if event.fact.wait is None else min(event.fact.wait, policy.restart_grace)
    deadline = Deadline(attempt, event.fact.at + max(0.0, wait), Reason.CONFIRM)
    return replace(room, recovery=Recovery.NONE, redispatches=0, error="", attempt=attempt, deadline=deadline)


# --- where the presence rules left the room ----------------------------------------------------------


def resolved(room: AgentView, event: Event, policy: Policy) -> AgentView:
    """No agent is needed now (or one is working): the incident, if any, is over."""
    return replace(
        room, deadline=None, recovery=Recovery.NONE, redispatches=0, error="", evict="", stale_dispatches=()
    )


def stand_down(room: AgentView, event: Event, policy: Policy) -> AgentView:
    """The room is over: nothing left to watch or to do."""
    return replace(room, deadline=None, recovery=Recovery.NONE)


def closed_failed(room: AgentView, event: Event, policy: Policy) -> AgentView:
    """A failed room that finished stays failed, for the record; nothing left to watch."""
    return replace(room, deadline=None)


def _with_deadline(room: AgentView, at: float, reason: Reason) -> AgentView:
    return replace(room, attempt=room.attempt + 1, deadline=Deadline(room.attempt + 1, at, reason))


def watch_agent(room: AgentView, event: Event, policy: Policy) -> AgentView:
    """Our agent is there; with `active_sla` it must publish or heartbeat by an ACTIVE deadline."""
    if policy.active_sla is None:
        return resolved(room, event, policy)
    if room.deadline is not None and room.deadline.reason is Reason.ACTIVE:
        return room  # already watched
    joined = max(a.joined_at for a in room.our_agents(policy))
    return _with_deadline(resolved(room, event, policy), joined + policy.active_sla, Reason.ACTIVE)


def let_check_decide(room: AgentView, event: Event, policy: Policy) -> AgentView:
    """A step under way while our agent is there: the stalled-agent check decides for itself; any
    other step (the agent was missing) is moot now."""
    if room.deadline is not None and room.deadline.reason is Reason.ACTIVE:
        return room
    return watch_agent(room, event, policy)


def await_join(room: AgentView, event: Event, policy: Policy) -> AgentView:
    """People wait for an agent: one must join `join_sla` after the first of them arrived (or after
    `room_started`, by policy). A deadline already set (but a stalled-agent one) keeps running."""
    if room.deadline is not None and room.deadline.reason is not Reason.ACTIVE:
        return room
    assert room.waiting_since is not None  # set on entering a waiting phase
    base = room.waiting_since
    if policy.sla_from_room_start and room.started_at is not None:
        base = room.started_at
    return _with_deadline(room, base + policy.join_sla, Reason.JOIN)


def await_rejoin(room: AgentView, event: Event, policy: Policy) -> AgentView:
    """Our agent left while people remain: one must be back `rejoin_sla` after it left."""
    if room.deadline is not None and room.deadline.reason is not Reason.ACTIVE:
        return room
    assert room.waiting_since is not None  # set on entering a waiting phase
    return _with_deadline(room, room.waiting_since + policy.rejoin_sla, Reason.REJOIN)

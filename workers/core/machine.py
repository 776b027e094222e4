"""The room state machine. Pure: no I/O, no clock, no settings; time and policy are inputs.

The rules, in plain words.

Who is there
1. A room is keyed by its sid (names get reused). It starts IDLE: known, nobody in it.
2. People are every participant but agents and egress recorders. "Our" agent is a participant of
   kind AGENT named `policy.agent_name` (any agent when that is empty; an agent that gives no name
   counts too, so that Warden never books a second one beside it).
3. The phase follows from who is present, and from the phase before: CLOSED once `room_finished`
   came (nothing changes a closed room again); AGENT_ACTIVE when our agent is present and has
   published a track or sent a heartbeat; AGENT_PRESENT when it is present and has not; else IDLE
   when no person is present; AGENT_LOST when people remain and our agent was present just before
   (it stays so while people come and go); WAITING when people are there and no agent has come.
4. Participants are tracked by identity *and* sid: a `participant_left` for an old sid does not remove
   the identity's newer session (LiveKit's duplicate-identity takeover). A track event carries only
   an identity; it can only mark one of the present agents active. `agent_job_ended` means that
   job's agent participant is gone.
5. Events apply in LiveKit's `created_at` order; within one second in lifecycle order (`ORDER_RANK`);
   the store re-folds a room from its log when an older event arrives late.

What Warden does about it
6. Entering WAITING sets a JOIN deadline at the first person's arrival (or `room_started`, by policy)
   plus `join_sla`; entering AGENT_LOST sets a REJOIN deadline at the agent's departure plus
   `rejoin_sla` (longer than LiveKit's own ~15 s re-dispatch, so Warden does not race it). With
   `active_sla`, an agent that joined gets an ACTIVE deadline: it must publish or heartbeat by then.
   An agent that becomes active, a room that empties or closes, clears the deadline.
7. A deadline that passes (`DEADLINE_PASSED` with its attempt number, not before its time) makes
   Warden ask LiveKit before acting (CHECKING → `CheckPresence`). A stale or early timer is ignored.
8. The answer (`PRESENCE_OBSERVED`) is trusted over the webhooks: its participants replace Warden's
   lists (webhooks get lost). Then: our agent there (and active, for an ACTIVE deadline) — nothing to
   do. Nobody left — nothing to do. Otherwise re-dispatch: delete the stale dispatches for our agent
   and create one with the original metadata (REDISPATCHING → `Redispatch`); a stalled agent is
   removed first (EVICTING → `Evict`). Each re-dispatch sets a CONFIRM deadline, `join_sla` doubled
   per re-dispatch already made.
9. After `max_redispatches` re-dispatches, or when LiveKit refuses a call (4xx), the room is FAILED:
   `Escalate` is emitted once, and no more deadlines are set until an agent arrives or the room
   empties.
10. Every (phase, event kind) pair is declared in `TABLE`, including the ones that are ignored.

`transition` returns a `Decision`: the next room and the actions this step newly asks for, derived
from what changed. `pending_actions` re-derives what a room still awaits, so that a job that died
half-way can finish the work after a restart.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import replace
from itertools import product

from workers.core.events import Event, EventKind
from workers.core.recovery import (
    agent_dispatched,
    agent_evicted,
    agent_restarted,
    deadline_passed,
    presence_observed,
    reconciled,
    upstream_failed,
)
from workers.core.room import (
    Action,
    Agent,
    CheckPresence,
    Deadline,
    Decision,
    Dispatch,
    Escalate,
    Evict,
    Person,
    Phase,
    Policy,
    Reason,
    Recovery,
    Redispatch,
    ReportBreach,
    ReportRecovered,
    Room,
    ScheduleDeadline,
)

Handler = Callable[[Room, Event, Policy], Room]

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
    EventKind.HEARTBEAT: 7,
    EventKind.DEADLINE_PASSED: 7,
    EventKind.PRESENCE_OBSERVED: 7,
    EventKind.AGENT_EVICTED: 7,
    EventKind.AGENT_DISPATCHED: 7,
    EventKind.UPSTREAM_FAILED: 7,
    EventKind.AGENT_RESTARTED: 7,
    EventKind.RECONCILED: 7,
    EventKind.ROOM_FINISHED: 8,
}


def order_key(event: Event) -> tuple[int, int]:
    """Sort key for applying events: the second, then lifecycle order within it."""
    return (event.created_at, ORDER_RANK[event.kind])


# --- who is there -------------------------------------------------------------------------------


def _ignore(room: Room, event: Event, policy: Policy) -> Room:
    return room


def _start(room: Room, event: Event, policy: Policy) -> Room:
    return room if room.started_at is not None else replace(room, started_at=event.at)


def _finish(room: Room, event: Event, policy: Policy) -> Room:
    return replace(room, finished_at=event.at, people=(), agents=())


def _join(room: Room, event: Event, policy: Policy) -> Room:
    p = event.participant
    if p is None:
        return room
    if p.is_agent:
        agents = tuple(a for a in room.agents if a.identity != p.identity)
        return replace(room, agents=(*agents, Agent(p.identity, p.sid, p.agent_name, event.at)))
    if p.is_person:
        people = tuple(x for x in room.people if x.identity != p.identity)
        first = room.first_person_at if room.first_person_at is not None else event.at
        return replace(room, people=(*people, Person(p.identity, p.sid, event.at)), first_person_at=first)
    return room


def _same_session(identity: str, sid: str) -> Callable[[Person | Agent], bool]:
    return lambda x: x.identity == identity and (not sid or not x.sid or x.sid == sid)


def _leave(room: Room, event: Event, policy: Policy) -> Room:
    p = event.participant
    if p is None:
        return room
    gone = _same_session(p.identity, p.sid)
    return replace(
        room,
        people=tuple(x for x in room.people if not gone(x)),
        agents=tuple(a for a in room.agents if not gone(a)),
    )


def _activity(room: Room, event: Event, policy: Policy) -> Room:
    """A track published, or a heartbeat: the agent with that identity is working."""
    p = event.participant
    if p is None:
        return room
    is_it = _same_session(p.identity, p.sid)
    agents = tuple(
        replace(a, active_at=event.at) if is_it(a) and a.active_at is None else a for a in room.agents
    )
    return replace(room, agents=agents)


def _job_ended(room: Room, event: Event, policy: Policy) -> Room:
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
    EventKind.TRACK_PUBLISHED: _activity,
    EventKind.TRACK_UNPUBLISHED: _ignore,
    EventKind.AGENT_JOB_STARTED: _ignore,
    EventKind.AGENT_JOB_ENDED: _job_ended,
    EventKind.OTHER: _ignore,
    EventKind.HEARTBEAT: _activity,
    EventKind.DEADLINE_PASSED: deadline_passed,
    EventKind.PRESENCE_OBSERVED: presence_observed,
    EventKind.AGENT_EVICTED: agent_evicted,
    EventKind.AGENT_DISPATCHED: agent_dispatched,
    EventKind.UPSTREAM_FAILED: upstream_failed,
    EventKind.AGENT_RESTARTED: agent_restarted,
    EventKind.RECONCILED: reconciled,
}

TABLE: dict[tuple[Phase, EventKind], Handler] = {
    (phase, kind): (_ignore if phase is Phase.CLOSED else _OPEN_ROOM[kind])
    for phase, kind in product(Phase, EventKind)
}

# --- settling: phase, deadlines, and the actions that follow -------------------------------------

_WAITING = (Phase.WAITING, Phase.AGENT_LOST)
_AGENT_HERE = (Phase.AGENT_PRESENT, Phase.AGENT_ACTIVE)


def _next_phase(before: Phase, room: Room, policy: Policy) -> Phase:
    if room.finished_at is not None:
        return Phase.CLOSED
    ours = room.our_agents(policy)
    if ours:
        return Phase.AGENT_ACTIVE if any(a.active_at is not None for a in ours) else Phase.AGENT_PRESENT
    if not room.people:
        return Phase.IDLE
    if before in (*_AGENT_HERE, Phase.AGENT_LOST):
        return Phase.AGENT_LOST
    return Phase.WAITING


def _resolved(room: Room) -> Room:
    """No agent is needed now (or one is working): the incident, if any, is over."""
    return replace(
        room, deadline=None, recovery=Recovery.NONE, redispatches=0, error="", evict="", stale_dispatches=()
    )


def _with_deadline(room: Room, at: float, reason: Reason) -> Room:
    return replace(room, attempt=room.attempt + 1, deadline=Deadline(room.attempt + 1, at, reason))


def _settle_recovery(room: Room, before: Phase, policy: Policy) -> Room:
    phase = room.phase
    if phase is Phase.CLOSED:
        return replace(
            room, deadline=None, recovery=room.recovery if room.recovery is Recovery.FAILED else Recovery.NONE
        )
    if phase in (Phase.IDLE, Phase.AGENT_ACTIVE):
        return _resolved(room)
    busy = room.recovery in (Recovery.CHECKING, Recovery.EVICTING, Recovery.REDISPATCHING)
    if phase is Phase.AGENT_PRESENT:
        if room.recovery is Recovery.FAILED and before is Phase.AGENT_PRESENT:
            return room  # the stalled agent could not be replaced; escalation has it
        stall_check = room.deadline is not None and room.deadline.reason is Reason.ACTIVE
        if busy and stall_check:
            return room  # the stalled-agent check that is under way decides
        if policy.active_sla is None:
            return _resolved(room)
        if stall_check and not busy:
            return room
        joined = max(a.joined_at for a in room.our_agents(policy))
        return _with_deadline(_resolved(room), joined + policy.active_sla, Reason.ACTIVE)
    # WAITING or AGENT_LOST: an agent is needed
    if busy or room.recovery is Recovery.FAILED:
        return room
    if room.deadline is not None and room.deadline.reason is not Reason.ACTIVE:
        return room
    assert room.waiting_since is not None  # set on entering a waiting phase
    if phase is Phase.WAITING:
        base = room.waiting_since
        if policy.sla_from_room_start and room.started_at is not None:
            base = room.started_at
        return _with_deadline(room, base + policy.join_sla, Reason.JOIN)
    return _with_deadline(room, room.waiting_since + policy.rejoin_sla, Reason.REJOIN)


def pending_actions(room: Room, policy: Policy) -> tuple[Action, ...]:
    """What the room's state still waits for Warden to do (a re-run job does these again, safely)."""
    deadline = room.deadline
    if room.recovery is Recovery.NONE and deadline is not None:
        return (ScheduleDeadline(deadline.attempt, deadline.at, deadline.reason),)
    if deadline is None:
        return ()
    if room.recovery is Recovery.CHECKING:
        return (CheckPresence(deadline.attempt),)
    if room.recovery is Recovery.EVICTING:
        return (Evict(deadline.attempt, room.evict),)
    if room.recovery is Recovery.REDISPATCHING:
        return (
            Redispatch(deadline.attempt, policy.agent_name, room.dispatch_metadata, room.stale_dispatches),
        )
    return ()


def in_breach(room: Room) -> bool:
    """Has the room missed its SLA, with Warden still working on it (or given up)?"""
    return (
        room.recovery in (Recovery.REDISPATCHING, Recovery.EVICTING, Recovery.FAILED)
        or room.redispatches > 0
        or (room.deadline is not None and room.deadline.reason is Reason.CONFIRM)
    )


def new_actions(before: Room, after: Room, policy: Policy) -> tuple[Action, ...]:
    """The actions `after` asks for that `before` did not."""
    already = set(pending_actions(before, policy))
    actions: list[Action] = [a for a in pending_actions(after, policy) if a not in already]
    if in_breach(after) and not in_breach(before):
        actions.append(ReportBreach(str(after.deadline.reason) if after.deadline else "failed"))
    if after.recovery is Recovery.FAILED and before.recovery is not Recovery.FAILED:
        actions.append(Escalate(after.error, after.redispatches))
    if in_breach(before) and not in_breach(after):
        actions.append(ReportRecovered(str(after.phase)))
    if after.dispatched_on_start and not before.dispatched_on_start:
        actions.append(Dispatch(policy.agent_name))
    return tuple(actions)


def transition(room: Room, event: Event, *, now: float, policy: Policy) -> Decision:
    """Apply one event: look up the rule in `TABLE`, settle phase and deadlines, derive the actions."""
    handled = TABLE[(room.phase, event.kind)](room, event, policy)
    phase = _next_phase(room.phase, handled, policy)
    waiting_since = handled.waiting_since
    if phase not in _WAITING:
        waiting_since = None
    elif room.phase not in _WAITING:
        waiting_since = event.at
        if event.kind is EventKind.RECONCILED and phase is Phase.WAITING:
            waiting_since = min(
                p.joined_at for p in handled.people
            )  # adopted: the SLA runs from LiveKit's time
    agent_joined_at = handled.agent_joined_at
    if agent_joined_at is None and phase in _AGENT_HERE:
        agent_joined_at = min(a.joined_at for a in handled.our_agents(policy))
    dispatched = handled.dispatched_on_start or (
        policy.dispatch_on_start and phase is Phase.WAITING and room.phase is Phase.IDLE
    )
    settled = _settle_recovery(
        replace(
            handled,
            phase=phase,
            waiting_since=waiting_since,
            agent_joined_at=agent_joined_at,
            dispatched_on_start=dispatched,
            updated_at=now,
        ),
        room.phase,
        policy,
    )
    return Decision(settled, new_actions(room, settled, policy))


def fold(room: Room, events: Iterable[tuple[Event, float]], *, policy: Policy) -> Room:
    """Apply `(event, received_at)` pairs in `order_key` order; the room's state after all of them."""
    for event, received_at in sorted(events, key=lambda pair: order_key(pair[0])):
        room = transition(room, event, now=received_at, policy=policy).room
    return room

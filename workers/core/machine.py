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
   `Escalate` is emitted once, and no more deadlines are set until an agent arrives, the room
   empties, or the agent is restarted (`AGENT_RESTARTED`: a fresh start for a room still waiting, a
   CONFIRM deadline `restart_grace` later, or sooner when the event says so: at once when the agent's
   deployment is known to be back). A failed room that finishes stays failed, for the record.
10. The periodic reconciliation (`RECONCILED`) replaces who is there with LiveKit's listing, sparing
    joins within `RECONCILE_GRACE_SECONDS` of it; a room LiveKit no longer has is closed, and
    whatever Warden was doing about it stops, failed or not.
11. Two tables hold the rules, a rule for every pair, "ignore" included (an undeclared pair stops the
    import): `TABLE` by (phase, event kind) for who is there, `RECOVERY` by (recovery state, trigger)
    for rules 6-10. Warden's own events pass from the first to the second in the phases where they
    can matter; after every event, where presence left the room is the second one's trigger too.

`transition` returns a `Decision`: the next room and the actions this step newly asks for, derived
from what changed. `pending_actions` re-derives what a room still awaits, so that a job that died
half-way can finish the work after a restart.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

from workers.core.events import Event, EventKind
from workers.core.presence import activity, finish, job_ended, join, leave, reconciled, start
from workers.core.recovery import (
    Trigger,
    act_on_answer,
    ask_livekit,
    await_join,
    await_rejoin,
    closed_failed,
    confirm,
    fresh_start,
    give_up,
    let_check_decide,
    redispatch,
    resolved,
    stand_down,
    watch_agent,
)
from workers.core.room import (
    Action,
    AgentView,
    CheckPresence,
    Decision,
    Dispatch,
    Escalate,
    Evict,
    Phase,
    Policy,
    Reason,
    Recovery,
    Redispatch,
    ReportBreach,
    ReportRecovered,
    ScheduleDeadline,
)
from workers.core.table import ignore, table

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


def recover(room: AgentView, event: Event, policy: Policy) -> AgentView:
    """One of Warden's own events, in a phase where it can matter: `RECOVERY` has its rule."""
    return RECOVERY[(room.recovery, Trigger(event.kind))](room, event, policy)


# Who is there. Warden's own events matter only where a deadline or a recovery step can be under way
# (entering idle or agent_active clears both), a restart only where people wait for an agent of ours.
K = EventKind
TABLE = table("TABLE", Phase, EventKind, {
    #                                 idle        waiting     present     active      lost        closed
    K.ROOM_STARTED:                   (start,      start,      start,      start,      start,      ignore),
    K.ROOM_FINISHED:                  (finish,     finish,     finish,     finish,     finish,     ignore),
    K.PARTICIPANT_JOINED:             (join,       join,       join,       join,       join,       ignore),
    K.PARTICIPANT_LEFT:               (leave,      leave,      leave,      leave,      leave,      ignore),
    K.PARTICIPANT_CONNECTION_ABORTED: (leave,      leave,      leave,      leave,      leave,      ignore),
    K.TRACK_PUBLISHED:                (activity,   activity,   activity,   activity,   activity,   ignore),
    K.TRACK_UNPUBLISHED:              (ignore,     ignore,     ignore,     ignore,     ignore,     ignore),
    K.AGENT_JOB_STARTED:              (ignore,     ignore,     ignore,     ignore,     ignore,     ignore),
    K.AGENT_JOB_ENDED:                (job_ended,  job_ended,  job_ended,  job_ended,  job_ended,  ignore),
    K.OTHER:                          (ignore,     ignore,     ignore,     ignore,     ignore,     ignore),
    K.HEARTBEAT:                      (activity,   activity,   activity,   activity,   activity,   ignore),
    K.RECONCILED:                     (reconciled, reconciled, reconciled, reconciled, reconciled, ignore),
    K.DEADLINE_PASSED:                (ignore,     recover,    recover,    ignore,     recover,    ignore),
    K.PRESENCE_OBSERVED:              (ignore,     recover,    recover,    ignore,     recover,    ignore),
    K.AGENT_EVICTED:                  (ignore,     recover,    recover,    ignore,     recover,    ignore),
    K.AGENT_DISPATCHED:               (ignore,     recover,    recover,    ignore,     recover,    ignore),
    K.UPSTREAM_FAILED:                (ignore,     recover,    recover,    ignore,     recover,    ignore),
    K.AGENT_RESTARTED:                (ignore,     recover,    ignore,     ignore,     recover,    ignore),
})  # fmt: skip

# What Warden does about the agent. Rules for Warden's events act for the attempt the room is on only
# (a stale timer or answer is ignored); the other triggers are where presence left the room. A room
# that closes stays failed, for the record, unless LiveKit has forgotten it.
T = Trigger
RECOVERY = table("RECOVERY", Recovery, Trigger, {
    #                     none          checking          evicting          redispatching     failed
    T.DEADLINE_PASSED:    (ask_livekit,  ignore,           ignore,           ignore,           ignore),
    T.PRESENCE_OBSERVED:  (ignore,       act_on_answer,    ignore,           ignore,           ignore),
    T.AGENT_EVICTED:      (ignore,       ignore,           redispatch,       ignore,           ignore),
    T.AGENT_DISPATCHED:   (ignore,       ignore,           ignore,           confirm,          ignore),
    T.UPSTREAM_FAILED:    (ignore,       give_up,          give_up,          give_up,          ignore),
    T.AGENT_RESTARTED:    (fresh_start,  ignore,           ignore,           ignore,           fresh_start),
    T.ROOM_IDLE:          (resolved,     resolved,         resolved,         resolved,         resolved),
    T.PEOPLE_WAITING:     (await_join,   ignore,           ignore,           ignore,           ignore),
    T.AGENT_ARRIVED:      (watch_agent,  let_check_decide, let_check_decide, let_check_decide, watch_agent),
    T.AGENT_STAYED:       (watch_agent,  let_check_decide, let_check_decide, let_check_decide, ignore),
    T.AGENT_ACTIVE:       (resolved,     resolved,         resolved,         resolved,         resolved),
    T.AGENT_LOST:         (await_rejoin, ignore,           ignore,           ignore,           ignore),
    T.ROOM_CLOSED:        (stand_down,   stand_down,       stand_down,       stand_down,       closed_failed),
    T.ROOM_GONE:          (stand_down,   stand_down,       stand_down,       stand_down,       stand_down),
})  # fmt: skip
del K, T

_SETTLED = {
    Phase.IDLE: Trigger.ROOM_IDLE,
    Phase.WAITING: Trigger.PEOPLE_WAITING,
    Phase.AGENT_ACTIVE: Trigger.AGENT_ACTIVE,
    Phase.AGENT_LOST: Trigger.AGENT_LOST,
}


def settled(before: Phase, after: Phase, event: Event) -> Trigger:
    """Where the presence rules left the room, as the recovery table's trigger."""
    if after is Phase.CLOSED:
        gone = before is not Phase.CLOSED and event.kind is EventKind.RECONCILED
        return Trigger.ROOM_GONE if gone else Trigger.ROOM_CLOSED
    if after is Phase.AGENT_PRESENT:
        return Trigger.AGENT_STAYED if before is Phase.AGENT_PRESENT else Trigger.AGENT_ARRIVED
    return _SETTLED[after]


# --- settling: phase, deadlines, and the actions that follow -------------------------------------

_WAITING = (Phase.WAITING, Phase.AGENT_LOST)
_AGENT_HERE = (Phase.AGENT_PRESENT, Phase.AGENT_ACTIVE)


def _next_phase(before: Phase, room: AgentView, policy: Policy) -> Phase:
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


def pending_actions(room: AgentView, policy: Policy) -> tuple[Action, ...]:
    """What the room's state still waits for Warden to do (a re-run job does these again, safely)."""
    deadline, agent = room.deadline, room.agent
    if room.recovery is Recovery.NONE and deadline is not None:
        return (ScheduleDeadline(deadline.attempt, deadline.at, deadline.reason, agent),)
    if deadline is None:
        return ()
    if room.recovery is Recovery.CHECKING:
        return (CheckPresence(deadline.attempt, agent),)
    if room.recovery is Recovery.EVICTING:
        return (Evict(deadline.attempt, room.evict, agent),)
    if room.recovery is Recovery.REDISPATCHING:
        name = agent or policy.agent_name
        return (
            Redispatch(
                deadline.attempt,
                name,
                room.dispatch_metadata,
                room.stale_dispatches,
                room.dispatch_attributes,
            ),
        )
    return ()


def in_breach(room: AgentView) -> bool:
    """Has the room missed its SLA, with Warden still working on it (or given up)?"""
    return (
        room.recovery in (Recovery.REDISPATCHING, Recovery.EVICTING, Recovery.FAILED)
        or room.redispatches > 0
        or (room.deadline is not None and room.deadline.reason is Reason.CONFIRM)
    )


def new_actions(before: AgentView, after: AgentView, policy: Policy) -> tuple[Action, ...]:
    """The actions `after` asks for that `before` did not."""
    already = set(pending_actions(before, policy))
    actions: list[Action] = [a for a in pending_actions(after, policy) if a not in already]
    if in_breach(after) and not in_breach(before):
        actions.append(ReportBreach(str(after.deadline.reason) if after.deadline else "failed", after.agent))
    if after.recovery is Recovery.FAILED and before.recovery is not Recovery.FAILED:
        actions.append(Escalate(after.error, after.redispatches, after.agent))
    if in_breach(before) and not in_breach(after):
        actions.append(ReportRecovered(str(after.phase), after.agent))
    if after.dispatched_on_start and not before.dispatched_on_start:
        actions.append(Dispatch(policy.agent_name))
    return tuple(actions)


def transition(room: AgentView, event: Event, *, now: float, policy: Policy) -> Decision:
    """Apply one event: its rule in `TABLE`, then the phase it leaves, then that phase's rule in
    `RECOVERY` (deadlines and recovery follow presence); the actions follow from what changed."""
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
        policy.dispatch_on_start
        and bool(policy.agent_name)
        and phase is Phase.WAITING
        and room.phase is Phase.IDLE
    )
    moved = replace(
        handled,
        phase=phase,
        waiting_since=waiting_since,
        agent_joined_at=agent_joined_at,
        dispatched_on_start=dispatched,
        updated_at=now,
    )
    after = RECOVERY[(moved.recovery, settled(room.phase, phase, event))](moved, event, policy)
    return Decision(after, new_actions(room, after, policy))


def changes(room: AgentView, event: Event, *, now: float, policy: Policy) -> bool:
    """Would applying `event` change what Warden knows of the room, or decide anything? A check that only
    confirms what is known (a reconciliation that lists the same people, a heartbeat of an agent already
    active) does not, and is not worth a line in the room's log."""
    decision = transition(room, event, now=now, policy=policy)
    return bool(decision.actions) or known_state(decision.room) != known_state(room)


def known_state(room: AgentView) -> AgentView:
    """The room as far as a check can confirm it: who is there in any order, not when it was looked at."""
    return replace(
        room,
        people=tuple(sorted(room.people, key=lambda p: (p.identity, p.sid))),
        agents=tuple(sorted(room.agents, key=lambda a: (a.identity, a.sid))),
        updated_at=0.0,
    )


def fold(room: AgentView, events: Iterable[tuple[Event, float]], *, policy: Policy) -> AgentView:
    """Apply `(event, received_at)` pairs in `order_key` order; the room's state after all of them."""
    for event, received_at in sorted(events, key=lambda pair: order_key(pair[0])):
        room = transition(room, event, now=received_at, policy=policy).room
    return room

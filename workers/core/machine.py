"""The room state machine: one room, all its expected agents. Pure: no I/O, no clock, no settings; time
and the rules are inputs.

The rules, in plain words.

Who is there
1. A room is keyed by its sid (names get reused). It starts with nobody in it. Who is there is the
   room's, held once; each expected agent sees it in a phase of its own (`workers.core.agents` says
   which agents a room expects, and `AgentView` holds each one's part).
2. People are every participant but agents and egress recorders. An agent's part counts as "ours" a
   participant of kind AGENT with that agent's name (an agent that gives no name counts too, so that
   Warden never books a second one beside it). A room lists at most the policy's `people_listed`
   people by identity and counts the rest (`people_unlisted`): a join of someone not listed adds
   one, a leave of someone not listed takes one off, a listing from LiveKit counts afresh. Agents
   are always listed: the rules need only whether someone is there and who the agents are.
3. An agent's phase follows from who is present, and from its phase before: CLOSED once `room_finished`
   came (nothing changes a closed room again); AGENT_ACTIVE when our agent is present and has
   published a track or sent a heartbeat; AGENT_PRESENT when it is present and has not; else IDLE
   when no person is present; AGENT_LOST when people remain and our agent was present just before
   (it stays so while people come and go); WAITING when people are there and no agent has come. The
   room as a whole, once LiveKit was asked and named no agent for it, is NO_AGENT_EXPECTED while people
   are there (nobody waits for an agent: `presence.room_phase`, and the room's row).
4. Participants are tracked by identity *and* sid: a `participant_left` for an old sid does not remove
   the identity's newer session (LiveKit's duplicate-identity takeover). A track event carries only
   an identity; it can only mark one of the present agents active. `agent_job_ended` means that
   job's agent participant is gone.
5. Events apply in the order things happened (`workers.core.order.placed`): webhooks by LiveKit's `created_at` second and,
   within one second, in the order they arrived (LiveKit sends a room's webhooks through one FIFO
   queue; seconds are all it stamps); each of Warden's own events right after the events it was
   decided on (at the second of the newest webhook before it, whatever its wall clock says), so it
   never makes a webhook late. Only a webhook of an earlier second than one applied is late (a
   reordered delivery): the store folds the room again from a checkpoint before it. Jobs run
   concurrently, so a room's webhooks that reach the store together are handed over in lifecycle
   order within their second first (`order.lifecycle_key`: started, joined, published, left, ended).

What Warden does about each expected agent
6. Its part entering WAITING sets a JOIN deadline at the first person's arrival (or `room_started`, by
   policy) plus `join_sla`; entering AGENT_LOST sets a REJOIN deadline at the agent's departure plus
   `rejoin_sla` (longer than LiveKit's own ~15 s re-dispatch, so Warden does not race it). With
   `active_sla`, an agent that joined gets an ACTIVE deadline: it must publish or heartbeat by then.
   An agent that becomes active, a room that empties or closes, clears the deadline (an active agent's
   STUCK one excepted). An agent of ours whose `lk.agent.state` Warden has seen `initializing` (or
   `thinking`) while people are there gets a STUCK deadline at the time it first saw that state plus
   `stuck_initializing` (`stuck_thinking`), active or not, the earlier of it and the ACTIVE one watched
   (`workers.core.liveness`); another state clears it. With `dispatch_on_start`, an agent a rule (or
   `WARDEN_AGENT_NAME`) names gets its first dispatch from Warden when its part enters WAITING from
   IDLE, once.
7. A deadline that passes (`DEADLINE_PASSED` with its attempt number, not before its time) makes
   Warden ask LiveKit before acting (CHECKING → `CheckPresence`). A stale or early timer is ignored.
   Deadlines are numbered room-wide and a number is never used twice, re-folds included (`renumber.renumbered`),
   so a number names one agent's deadline.
8. The answer (`PRESENCE_OBSERVED`) is trusted over the webhooks: its participants replace the room's
   lists (webhooks get lost), sparing joins within `RECONCILE_GRACE_SECONDS` of it as rule 10 does
   (the listing may predate them); an agent listed with a published track is active. Then: our agent
   there (and active, for an ACTIVE deadline) — nothing to do. Nobody left — nothing to do. A dispatch
   for our agent that may still bring it — look again when it has had its time: no job listed,
   `LISTING_GRACE` after it was made (livekit-server lists a job up to 5 s after assigning it); a job
   listed and not ended (accepted, not joined), `CONNECT_GRACE`; a job LiveKit retries itself
   (`JSR_RETRYING`), one more join SLA past its deadline; one made before our agent left is not
   awaited. A dispatch whose jobs all ended on purpose (cancelled, room closed, dispatch deleted) is no
   failure: no re-dispatch, the room looked at again later (`workers.core.job_signals`). Otherwise
   re-dispatch: delete the stale dispatches for our agent (never one that may still bring it) and create
   one with the original metadata (REDISPATCHING → `Redispatch`); a stalled agent (no track nor
   heartbeat at an ACTIVE deadline) or a stuck one (at a STUCK deadline, still in a stuck state past its
   limit by the answer's listing, active or not) is removed first (EVICTING → `Evict`). Each re-dispatch
   sets a CONFIRM deadline, `join_sla` doubled per re-dispatch already made (at most
   `job_signals.MAX_BACKOFF_DOUBLINGS` times). Two copies of our agent (by its exact name) in the room
   set a DUPLICATE deadline due at once (AGENT_DOUBLED), whatever else was watched; its check removes
   one copy (EVICTING → `Evict`), no breach and no re-dispatch: not one a live dispatch's listed job
   names, if another is not (its dispatch was deleted: it is leaving); with no job naming any yet and
   a job still to be listed, it looks again once it is; else the later copy.
9. After `max_redispatches` re-dispatches (unless LiveKit refused the newest dispatch's job for want of
   capacity: a restart adds none, so re-dispatching goes on), or when LiveKit refuses a call (4xx), the
   agent's part is FAILED: `ReportFailed` is emitted once, and no more deadlines are set until an agent
   arrives, the room empties, or the agent is restarted (`AGENT_RESTARTED`: a fresh start for a room
   still waiting, a CONFIRM deadline `restart_grace` later, or sooner when the event says so: at once
   when the agent's deployment is known to be back). A failed part of a room that finishes stays
   failed, for the record. An operator's request (`REDISPATCH_ASKED`, people waiting) sets a BY_HAND
   deadline due at once, a failed part's too: its check decides as rule 8 says, re-dispatches used up or not.
10. The periodic reconciliation (`RECONCILED`) replaces who is there with LiveKit's listing, sparing
    joins within `RECONCILE_GRACE_SECONDS` of it; a room LiveKit no longer has is closed, and
    whatever Warden was doing about it stops, failed or not.
11. Two tables hold the rules, a rule for every pair, "ignore" included (an undeclared pair stops the
    import): `TABLE` by (phase, event kind) for who is there, `RECOVERY` by (recovery state, trigger)
    for rules 6-10. An event's rule in `TABLE` is read in the phase of whom it concerns: one of
    Warden's own events, the part it is for (so it passes to `RECOVERY` in the phases where it can
    matter); anything else, the room as a whole (`presence.room_phase`), and applies once. Then every
    part's phase follows from who is there (`presence.phase_of`), and where presence left the room is
    that part's trigger in the second table.
12. Then every part passes through `fallback.protect` (its table `PROTECTION`): an agent that cannot be
    brought back gets a fallback for its people, once per outage (`workers.core.fallback`).
13. Each part keeps when its people's join SLA ends (`due_at`), for its service levels (`workers.core.sli`).

`transition` returns a `Decision`: the next room and the actions this step newly asks for, derived
from what changed (`workers.core.actions`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace

from workers.core.actions import new_actions
from workers.core.agents import counted, declared, expect, noted
from workers.core.events import LISTINGS, Event, EventKind
from workers.core.fallback import outage_known, protect
from workers.core.order import placed
from workers.core.presence import (
    Presence,
    activity,
    capped,
    finish,
    job_ended,
    join,
    leave,
    phase_of,
    reconciled,
    room_phase,
    start,
)
from workers.core.recovery import (
    Rule,
    Trigger,
    act_on_answer,
    ask_livekit,
    await_join,
    await_rejoin,
    by_hand,
    closed_failed,
    confirm,
    fresh_start,
    give_up,
    let_check_decide,
    let_stuck_decide,
    redispatch,
    remove_copy,
    resolved,
    stand_down,
    watch_active,
    watch_agent,
)
from workers.core.room import WAITING_PHASES, AgentView, Decision, Phase, Policy, Recovery, Redispatch, Room
from workers.core.rules import RULE, SETTING, Rules
from workers.core.sli import tracked
from workers.core.table import ignore, table

# Warden's own events that belong to one deadline attempt (`Fact.attempt`), hence to one agent's part.
_ATTEMPT_EVENTS = frozenset({EventKind.DEADLINE_PASSED, EventKind.PRESENCE_OBSERVED, EventKind.AGENT_EVICTED,
                             EventKind.AGENT_DISPATCHED, EventKind.UPSTREAM_FAILED})  # fmt: skip


def _target(room: Room, event: Event) -> AgentView | None:
    """The part one of Warden's own events is for: the one whose deadline has its attempt number (none:
    stale), or for a restart the restarted agent's (one that names no agent, from before views
    existed: the room's first expected agent's). None for anything else."""
    fact = event.fact
    if fact is None:
        return None
    if event.kind in _ATTEMPT_EVENTS:
        return room.for_attempt(fact.attempt)
    if event.kind is EventKind.AGENT_RESTARTED:
        return room.view(fact.agent) if fact.agent else (room.views[0] if room.views else room.watch)
    if event.kind is EventKind.REDISPATCH_ASKED:
        return room.view(fact.agent)  # only an agent the room expects
    return None


def _policy(room: Room, view: AgentView, policy: Policy) -> Policy:
    """The policy an agent's part is moved by: its agent's name; the room's own watch counts no agent."""
    if room.watch is not None and not view.agent:
        return replace(policy, agent_name="", discovering=True)
    # Spared agents are observe mode's alone: in act mode (after the switch) each counts again, and act
    # judges it afresh (a second copy removed, a stuck one too), rather than re-dispatching beside it.
    spared = frozenset(view.spared) if policy.observing else frozenset()
    return replace(policy, agent_name=view.agent, spared=spared)


def recover(room: Room, event: Event, policy: Policy) -> Room:
    """One of Warden's own events, for the part it is for, in a phase where it can matter: `RECOVERY`
    has its rule (for no part, a stale event changes nothing)."""
    view = _target(room, event)
    if view is None:
        return room
    return RECOVERY[(view.recovery, Trigger(event.kind))](room, view, event, _policy(room, view, policy))


# Who is there, by the phase of whom the event concerns (see rule 11). Warden's own events matter only
# where a deadline or a recovery step can be under way (entering idle clears both; in agent_active only
# the removal of a second copy can be), a restart only where people wait for an agent of ours.
K = EventKind
TABLE: Mapping[tuple[Phase, EventKind], Presence] = table("TABLE", Phase, EventKind, {
    #                                 idle        waiting     present     active      lost        closed      no agent
    K.ROOM_STARTED:                   (start,      start,      start,      start,      start,      ignore,     start),
    K.ROOM_FINISHED:                  (finish,     finish,     finish,     finish,     finish,     ignore,     finish),
    K.PARTICIPANT_JOINED:             (join,       join,       join,       join,       join,       ignore,     join),
    K.PARTICIPANT_LEFT:               (leave,      leave,      leave,      leave,      leave,      ignore,     leave),
    K.PARTICIPANT_CONNECTION_ABORTED: (leave,      leave,      leave,      leave,      leave,      ignore,     leave),
    K.TRACK_PUBLISHED:                (activity,   activity,   activity,   activity,   activity,   ignore,     activity),
    K.TRACK_UNPUBLISHED:              (ignore,     ignore,     ignore,     ignore,     ignore,     ignore,     ignore),
    K.AGENT_JOB_STARTED:              (ignore,     ignore,     ignore,     ignore,     ignore,     ignore,     ignore),
    K.AGENT_JOB_PENDING:              (ignore,     ignore,     ignore,     ignore,     ignore,     ignore,     ignore),
    K.AGENT_JOB_ENDED:                (job_ended,  job_ended,  job_ended,  job_ended,  job_ended,  ignore,     job_ended),
    K.OTHER:                          (ignore,     ignore,     ignore,     ignore,     ignore,     ignore,     ignore),
    K.HEARTBEAT:                      (activity,   activity,   activity,   activity,   activity,   ignore,     activity),
    K.RECONCILED:                     (reconciled, reconciled, reconciled, reconciled, reconciled, ignore,     reconciled),
    K.DEADLINE_PASSED:                (ignore,     recover,    recover,    recover,    recover,    ignore,     ignore),
    K.PRESENCE_OBSERVED:              (ignore,     recover,    recover,    recover,    recover,    ignore,     ignore),
    K.AGENT_EVICTED:                  (ignore,     recover,    recover,    recover,    recover,    ignore,     ignore),
    K.AGENT_DISPATCHED:               (ignore,     recover,    recover,    recover,    recover,    ignore,     ignore),
    K.UPSTREAM_FAILED:                (ignore,     recover,    recover,    recover,    recover,    ignore,     ignore),
    K.AGENT_RESTARTED:                (ignore,     recover,    ignore,     ignore,     recover,    ignore,     ignore),
    K.REDISPATCH_ASKED:               (ignore,     recover,    ignore,     ignore,     recover,    ignore,     ignore),
})  # fmt: skip

# What Warden does about an agent. Rules for Warden's events act for the attempt its part is on only (a
# stale timer or answer is ignored); the other triggers are where presence left the room. A part that
# closes stays failed, for the record, unless LiveKit has forgotten the room.
T = Trigger
RECOVERY: Mapping[tuple[Recovery, Trigger], Rule] = table("RECOVERY", Recovery, Trigger, {
    #                     none          checking          evicting          redispatching     failed
    T.DEADLINE_PASSED:    (ask_livekit,  ignore,           ignore,           ignore,           ignore),
    T.PRESENCE_OBSERVED:  (ignore,       act_on_answer,    ignore,           ignore,           ignore),
    T.AGENT_EVICTED:      (ignore,       ignore,           redispatch,       ignore,           ignore),
    T.AGENT_DISPATCHED:   (ignore,       ignore,           ignore,           confirm,          ignore),
    T.UPSTREAM_FAILED:    (ignore,       give_up,          give_up,          give_up,          ignore),
    T.AGENT_RESTARTED:    (fresh_start,  ignore,           ignore,           ignore,           fresh_start),
    T.REDISPATCH_ASKED:   (by_hand,      ignore,           ignore,           ignore,           by_hand),
    T.ROOM_IDLE:          (resolved,     resolved,         resolved,         resolved,         resolved),
    T.PEOPLE_WAITING:     (await_join,   ignore,           ignore,           ignore,           ignore),
    T.AGENT_ARRIVED:      (watch_agent,  let_check_decide, let_check_decide, let_check_decide, watch_agent),
    T.AGENT_STAYED:       (watch_agent,  let_check_decide, let_check_decide, let_check_decide, ignore),
    T.AGENT_ACTIVE:       (watch_active, let_stuck_decide, let_stuck_decide, let_stuck_decide, resolved),
    T.AGENT_DOUBLED:      (remove_copy,  ignore,           ignore,           ignore,           remove_copy),
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
_AGENT_HERE = (Phase.AGENT_PRESENT, Phase.AGENT_ACTIVE)


def settled(before: Phase, after: Phase, event: Event, *, doubled: bool = False) -> Trigger:
    """Where the presence rules left the room for one agent, as the recovery table's trigger (`doubled`:
    two copies of the agent are there)."""
    if after is Phase.CLOSED:
        forgotten = event.kind is EventKind.RECONCILED or (
            event.kind is EventKind.PRESENCE_OBSERVED
            and event.fact is not None
            and not event.fact.room_exists
        )
        return Trigger.ROOM_GONE if before is not Phase.CLOSED and forgotten else Trigger.ROOM_CLOSED
    if doubled and after in _AGENT_HERE:
        return Trigger.AGENT_DOUBLED
    if after is Phase.AGENT_PRESENT:
        return Trigger.AGENT_STAYED if before is Phase.AGENT_PRESENT else Trigger.AGENT_ARRIVED
    return _SETTLED[after]


# --- the whole room ---------------------------------------------------------------------------------


def transition(room: Room, event: Event, *, now: float, rules: Rules) -> Decision:
    """Apply one event to the room: the agents its rule names (`agents.expect`); the event's rule in
    `TABLE`, once (who is there, or the part one of Warden's own events is for); each part's phase and
    its rule in `RECOVERY` for where presence left it; then the agents the event declares. The actions
    follow from what changed."""
    caller = event.participant is not None and event.participant.is_caller
    policy, rule = rules.policy_for(room.name or event.room_name, room.sip or caller)
    if rules.observe:
        policy = replace(policy, observing=True)
    after = expect(replace(room, sip=room.sip or caller, updated_at=now), rule)
    concerned, seen = _target(after, event), event
    if concerned is not None and concerned is after.watch and event.kind is EventKind.PRESENCE_OBSERVED:
        # The watch's question is answered (`agents`, rule 2): for the room, a reconciliation.
        after, seen, concerned = replace(after, watch=None), replace(event, kind=EventKind.RECONCILED), None
    after = outage_known(after, concerned, event)  # a restart: its agent's incident is open (rule 12)
    phase = room_phase(after) if concerned is None else concerned.phase
    after = capped(TABLE[(phase, seen.kind)](after, seen, policy), policy.people_listed)
    for view in after.watchers():
        after = _settle(after, view, seen, _policy(after, view, policy))
    for agent, source, since in declared(event, rule, after):
        if agent != policy.fallback_agent or not agent:  # the fallback agent is not one of the room's own
            after = _expect(after, agent, source, seen, policy, since)
    after = tracked(room, noted(after, event), event.at)  # each part's join SLA, for its service levels
    actions = new_actions(room, after)
    for decided in (a for a in actions if isinstance(a, Redispatch)):
        after = after.put(counted(after.view_for(decided.agent), decided.attempt))  # counted once decided
    return Decision(after, actions)


def _settle(
    room: Room,
    view: AgentView,
    event: Event,
    policy: Policy,
    *,
    new: bool = False,
    since: float | None = None,
) -> Room:
    """Where presence left the room for one part: its phase, when its people started waiting or its agent
    came, its first dispatch (rule 6); then that phase's rule in `RECOVERY`. A `new` part is as if it
    had watched from the first person's arrival, or from `since` (its dispatch) when later (`agents`,
    rule 3)."""
    before = view.phase
    phase = phase_of(room, before, policy)
    waiting_since = view.waiting_since
    if phase not in WAITING_PHASES:
        waiting_since = None
    elif before not in WAITING_PHASES:
        # a room adopted from a listing, or a new part: people have waited since LiveKit says they came
        listed = phase is Phase.WAITING and (new or event.kind in LISTINGS)
        waiting_since = min((p.joined_at for p in room.people), default=event.at) if listed else event.at
        if new and since is not None:
            waiting_since = max(waiting_since, since)
    agent_joined_at = view.agent_joined_at
    if agent_joined_at is None and phase in _AGENT_HERE:
        agent_joined_at = min(a.joined_at for a in room.our_agents(policy))
    first_dispatch = view.dispatched_on_start or (
        policy.dispatch_on_start
        and phase is Phase.WAITING
        and before is Phase.IDLE
        and bool({RULE, SETTING} & set(view.sources))
    )
    moved = replace(
        view,
        phase=phase,
        waiting_since=waiting_since,
        agent_joined_at=agent_joined_at,
        dispatched_on_start=first_dispatch,
    )
    trigger = settled(before, phase, event, doubled=len(room.copies(policy)) > 1)
    room = RECOVERY[(moved.recovery, trigger)](room.put(moved), moved, event, policy)
    recovered = room.view(moved.agent) if moved.agent else None  # the room's own watch: no agent
    return room if recovered is None else room.put(protect(room, recovered, policy, event.at))


def _expect(
    room: Room, agent: str, source: str, event: Event, policy: Policy, since: float | None = None
) -> Room:
    """The room expecting `agent` (learned from `source`; dispatched at `since`): a part of its own, if it
    has none yet."""
    known = room.view(agent)
    if known is not None:
        return room if source in known.sources else room.put(replace(known, sources=(*known.sources, source)))
    fresh = AgentView(agent, (source,))
    room = replace(room, views=(*room.views, fresh))
    return _settle(room, fresh, event, _policy(room, fresh, policy), new=True, since=since)


def fold(room: Room, events: Iterable[tuple[Event, float]], *, rules: Rules, newest: int = -1) -> Room:
    """Apply `(event, received_at)` pairs, given in arrival order, in the order they apply (`order.placed`;
    `newest` as there); the room after all of them."""
    for event, received_at in placed(events, newest=newest):
        room = transition(room, event, now=received_at, rules=rules).room
    return room


def changes(room: Room, event: Event, *, now: float, rules: Rules) -> bool:
    """Would applying `event` change what Warden knows of the room, or decide anything? A check that only
    confirms what is known (a reconciliation that lists the same people, a heartbeat of an agent already
    active) does not, and is not worth a line in the room's log."""
    decision = transition(room, event, now=now, rules=rules)
    return bool(decision.actions) or _known(decision.room) != _known(room)


def _known(room: Room) -> Room:
    """The room as far as a check can confirm it: who is there in any order, not when it was looked at."""
    return replace(
        room,
        people=tuple(sorted(room.people, key=lambda p: (p.identity, p.sid))),
        agents=tuple(sorted(room.agents, key=lambda a: (a.identity, a.sid))),
        updated_at=0.0,
    )

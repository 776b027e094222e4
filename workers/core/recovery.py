"""The recovery rules of the room state machine: what Warden does about each expected agent of a room
(`Recovery`). Pure, like `workers.core.machine`, whose `RECOVERY` table says for which (recovery state,
`Trigger`) pair each rule applies; the rules are stated in plain words at the top of that module.

The table moves one agent's part of the room (`AgentView`) on two kinds of input. Warden's own events (a
deadline passing, LiveKit's answer to "who is there", the outcome of an evict or a dispatch, LiveKit
refusing a call, the agent restarted) reach the part they are for through the presence table, in the
phases where they can matter. And after every event, where the presence rules left the room for that
agent (people waiting, an agent arrived, the room idle or closed...) is one more trigger, so that
deadlines follow presence. Each rule reads who is there from the room, moves the part and gives the room
back: a new deadline takes the room's next number, and LiveKit's answer (or an eviction) is news of who
is there for the whole room. A dispatch that may still bring its agent is never deleted
(`LISTING_GRACE`, `CONNECT_GRACE`), and two copies of an agent lose one at once (`remove_copy`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from enum import StrEnum
from functools import wraps

from workers.core import job_signals
from workers.core.events import DispatchInfo, Event, Fact, JobStatus
from workers.core.liveness import STUCK_REASONS, stuck_agent, stuck_due
from workers.core.observing import unobserved
from workers.core.presence import listed
from workers.core.room import Agent, AgentView, Deadline, Phase, Policy, Reason, Recovery, Room


class Trigger(StrEnum):
    """What moves the recovery of one expected agent."""

    # Warden's own events (named as their `EventKind`)
    DEADLINE_PASSED = "deadline_passed"
    PRESENCE_OBSERVED = "presence_observed"
    AGENT_EVICTED = "agent_evicted"
    AGENT_DISPATCHED = "agent_dispatched"
    UPSTREAM_FAILED = "upstream_failed"
    AGENT_RESTARTED = "agent_restarted"
    REDISPATCH_ASKED = "redispatch_asked"  # an operator asked for a re-dispatch now
    # where the presence rules left the room, after every event
    ROOM_IDLE = "room_idle"  # nobody there
    PEOPLE_WAITING = "people_waiting"  # waiting: people, no agent has come
    AGENT_ARRIVED = "agent_arrived"  # agent_present, entered just now
    AGENT_STAYED = "agent_stayed"  # agent_present, as before
    AGENT_ACTIVE = "agent_active"
    AGENT_DOUBLED = "agent_doubled"  # agent_present or agent_active, two copies of it there
    AGENT_LOST = "agent_lost"
    ROOM_CLOSED = "room_closed"  # by `room_finished`, or closed already
    ROOM_GONE = "room_gone"  # LiveKit no longer has the room (reconciliation, or the answer to a check)


Rule = Callable[[Room, AgentView, Event, Policy], Room]
Step = Callable[[Room, AgentView, Fact, Deadline, Policy], Room]
# A dispatch that may still bring its agent is never deleted: deleting it terminates a job LiveKit may
# have assigned already, whose agent (its entrypoint running on) still joins beside the replacement.
# Measured against livekit-server v1.13.5 (issue 23): a worker accepts a job ~0.2 s after the dispatch,
# but `ListDispatch` shows the job only when the agent-name cache refresh in flight ends, 0.1-5 s after
# the dispatch. So a dispatch with no job listed is awaited until `LISTING_GRACE` after it was made...
LISTING_GRACE = 6.0
# ...and one whose job is listed and not ended (JS_RUNNING: accepted, not joined) until `CONNECT_GRACE`
# after it was made: a cold start took 4.5-5.5 s; a worker that accepts and never connects is a real
# failure, so the wait is bounded.
CONNECT_GRACE = 10.0
_NOT_ENDED = (JobStatus.PENDING, JobStatus.RUNNING)
# Deadlines that watch an agent that is there (`watch_agent`): its check decides for itself.
WATCH_REASONS = (Reason.ACTIVE, *STUCK_REASONS)


def for_current_attempt(step: Step) -> Rule:
    """`step` for the attempt the agent's part is on; a timer or an answer for another attempt (late,
    repeated, or from before it moved on) is stale and changes nothing."""

    @wraps(step)
    def rule(room: Room, view: AgentView, event: Event, policy: Policy) -> Room:
        fact, deadline = event.fact, view.deadline
        if fact is None or deadline is None or fact.attempt != deadline.attempt:
            return room
        return step(room, view, fact, deadline, policy)

    return rule


# --- Warden's own events ----------------------------------------------------------------------------


@for_current_attempt
def ask_livekit(room: Room, view: AgentView, fact: Fact, deadline: Deadline, policy: Policy) -> Room:
    """Ask LiveKit before acting (an early timer waits for its time)."""
    return room if fact.at < deadline.at else room.put(replace(view, recovery=Recovery.CHECKING))


@for_current_attempt
def act_on_answer(room: Room, view: AgentView, fact: Fact, deadline: Deadline, policy: Policy) -> Room:
    """LiveKit's answer, trusted over the webhooks (they get lost): who is there, for the whole room, is
    what it lists (`presence.listed`, sparing joins the listing may predate). Then: remove one of two
    copies, nothing to do, wait for a dispatch that may still bring its agent (or that LiveKit retries
    itself), let a dispatch called off go (`workers.core.job_signals`), evict a stalled (or stuck:
    `workers.core.liveness`) agent, re-dispatch, or give up when the re-dispatches are used up (never
    while the agent's workers are full)."""
    room = listed(room, fact)
    if not fact.room_exists:
        return at_rest(room, view)
    if deadline.reason is Reason.DUPLICATE:
        return _remove_copy(room, view, fact, policy)
    ours = room.our_agents(policy)
    stalled = _stalled(room, ours, deadline, fact, policy)
    if (ours and stalled is None) or not room.people:
        return at_rest(room, view)
    mine = sorted(
        (d for d in fact.dispatches if d.agent_name == policy.agent_name), key=lambda d: d.created_at
    )
    deleted = bool(view.let_go) and all(d.id == view.let_go for d in mine)  # its dispatch deleted, unlisted
    if (deleted or (mine and job_signals.let_go(mine[-1]))) and stalled is None:
        # its job was cancelled, its dispatch deleted: no failure; a dispatch made later is seen then
        later = fact.at + max(policy.join_sla, job_signals.LET_GO_LOOK_AGAIN)
        return _with_deadline(room, replace(view, recovery=Recovery.NONE), later, deadline.reason)
    # a restart adds no capacity: keep trying (full still, until the newest dispatch's job is listed)
    full = bool(mine) and (job_signals.refused(mine[-1]) or (view.full and not mine[-1].jobs))
    if view.redispatches >= policy.max_redispatches and not full and deadline.reason is not Reason.BY_HAND:
        return room.put(_failed(view, f"no agent after {view.redispatches} re-dispatch(es)"))
    left_at = view.waiting_since if view.phase is Phase.AGENT_LOST else None
    since = view.waiting_since or 0.0
    graces = (
        _may_serve_until(
            d, fact.at, left_at, job_signals.retry_until(d, since, policy.join_sla, view.redispatches)
        )
        for d in mine
    )
    awaited = [u for u in graces if u is not None]
    if awaited and stalled is None:
        # LiveKit may have assigned that dispatch already: look again once it has had its time.
        waiting = replace(view, recovery=Recovery.NONE)
        return _with_deadline(room, waiting, max(awaited), deadline.reason)
    present = frozenset(a.identity for a in room.agents)
    came = left_at if left_at is not None else view.agent_joined_at
    took = job_signals.unjoined(mine, present, after=came)
    view = replace(
        view,
        full=full,
        unjoined=(*view.unjoined, *(t for t in took if t not in view.unjoined)),
        stale_dispatches=tuple(d.id for d in mine),
        dispatch_metadata=mine[0].metadata if mine else view.dispatch_metadata,
        dispatch_attributes=mine[0].attributes if mine else view.dispatch_attributes,
    )
    if stalled is not None:
        return room.put(replace(view, recovery=Recovery.EVICTING, evict=stalled.identity))
    return room.put(replace(view, recovery=Recovery.REDISPATCHING))


def _stalled(
    room: Room, ours: tuple[Agent, ...], deadline: Deadline, fact: Fact, policy: Policy
) -> Agent | None:
    """The agent of ours to remove at a watch deadline: for ACTIVE, the first when none has published
    or sent a heartbeat; for a stuck state, the first still stuck by LiveKit's listing (`liveness`)."""
    if deadline.reason is Reason.ACTIVE:
        return ours[0] if ours and all(a.active_at is None for a in ours) else None
    if deadline.reason in STUCK_REASONS:
        return stuck_agent(room, policy, fact.at)
    return None


def _remove_copy(room: Room, view: AgentView, fact: Fact, policy: Policy) -> Room:
    """Two or more copies of our agent are listed: evict one. Not one that a live dispatch's listed job
    names, if another is not (a copy whose dispatch was deleted is on its way out anyway, in up to 15 s
    when its entrypoint runs on); when no job names any yet and a dispatch's job may still be listed,
    look again once it is; else the later."""
    copies = room.copies(policy)
    if len(copies) < 2:
        return at_rest(room, view)
    mine = [d for d in fact.dispatches if d.agent_name == policy.agent_name]
    served = {i for d in mine for i in d.agents}
    unserved = [a for a in copies if a.identity not in served]
    if served and unserved:
        return room.put(replace(view, recovery=Recovery.EVICTING, evict=unserved[-1].identity))
    unlisted = [d.created_at + LISTING_GRACE for d in mine if not d.statuses]
    if not served and any(at > fact.at for at in unlisted):
        return _with_deadline(room, replace(view, recovery=Recovery.NONE), max(unlisted), Reason.DUPLICATE)
    return room.put(replace(view, recovery=Recovery.EVICTING, evict=copies[-1].identity))


def _may_serve_until(
    dispatch: DispatchInfo, at: float, left_at: float | None, retry_by: float
) -> float | None:
    """Until when `dispatch` may still bring its agent, if that is after `at` (else None): with no job
    listed, `LISTING_GRACE` after it was made; with a job listed and not ended, `CONNECT_GRACE`; with a
    job LiveKit is retrying itself, until `retry_by` (`job_signals.retry_until`). One made before our
    agent left (`left_at`) has served it, or never will."""
    if left_at is not None and dispatch.created_at <= left_at:
        return None
    graces = [retry_by] if job_signals.retrying(dispatch) else []
    if not dispatch.statuses:
        graces.append(dispatch.created_at + LISTING_GRACE)
    elif any(s in _NOT_ENDED for s in dispatch.statuses) and not job_signals.refused(dispatch):
        graces.append(dispatch.created_at + CONNECT_GRACE)
    until = max(graces, default=None)
    return until if until is not None and until > at else None


@for_current_attempt
def redispatch(room: Room, view: AgentView, fact: Fact, deadline: Deadline, policy: Policy) -> Room:
    """The stalled agent is out (of the room, for every agent's part): re-dispatch. A second copy that
    is out leaves the first one there: nothing more to do. One observe mode did not remove is spared
    from then on, as good as gone for the part (`workers.core.observing`, rule 1)."""
    present = replace(room, agents=tuple(a for a in room.agents if a.identity != view.evict))
    if not fact.carried_out and view.evict not in view.spared:
        view = replace(view, spared=(*view.spared, view.evict))
    if deadline.reason is Reason.DUPLICATE:
        return present.put(replace(view, evict="", recovery=Recovery.NONE, deadline=None))
    return present.put(replace(view, evict="", recovery=Recovery.REDISPATCHING))


@for_current_attempt
def confirm(room: Room, view: AgentView, fact: Fact, deadline: Deadline, policy: Policy) -> Room:
    """A new dispatch: confirm it with a deadline, `join_sla` doubled per re-dispatch already made (at
    most `job_signals.MAX_BACKOFF_DOUBLINGS` times)."""
    count = view.redispatches + 1
    dispatched = replace(
        view,
        recovery=Recovery.NONE,
        redispatches=count,
        # one observe mode did not make is no dispatch: none to show, none to wait for (`observing`)
        dispatch_id=fact.dispatch_id if fact.carried_out else view.dispatch_id,
        dispatched_at=fact.at if fact.carried_out else view.dispatched_at,
        stale_dispatches=(),
    )
    return _with_deadline(
        room, dispatched, fact.at + job_signals.confirm_wait(policy.join_sla, count), Reason.CONFIRM
    )


@for_current_attempt
def give_up(room: Room, view: AgentView, fact: Fact, deadline: Deadline, policy: Policy) -> Room:
    """LiveKit refused a call (4xx): the agent's part is failed, escalated, not retried."""
    return room.put(_failed(view, f"LiveKit refused: {fact.error}"))


def _failed(view: AgentView, reason: str) -> AgentView:
    return replace(view, recovery=Recovery.FAILED, error=reason, deadline=None, evict="", stale_dispatches=())


def fresh_start(room: Room, view: AgentView, event: Event, policy: Policy) -> Room:
    """The agent was restarted (an outage's escalation) while people wait for it (the presence table
    passes the restart on in waiting and agent_lost only): a fresh start, a confirm deadline once the
    restart has had `restart_grace` to bring workers up — or the event's own `wait`, when that is
    shorter (0: its deployment reports running replicas, re-check at once)."""
    if event.fact is None:
        return room
    wait = policy.restart_grace if event.fact.wait is None else min(event.fact.wait, policy.restart_grace)
    fresh = unobserved(_reset(view)) if event.fact.observed else _reset(view)  # act taking over observe's
    return _with_deadline(room, fresh, event.fact.at + max(0.0, wait), Reason.CONFIRM)


def by_hand(room: Room, view: AgentView, event: Event, policy: Policy) -> Room:
    """An operator asked for a re-dispatch now while people wait for the agent (the presence table passes
    the request on in waiting and agent_lost only): a BY_HAND deadline due at once, whose check decides
    as any check does (an agent there, or a dispatch that may still bring it: nothing; else re-dispatch,
    the re-dispatches used up or not). A failed part is taken up again. One asked for already stands."""
    if event.fact is None or (view.deadline is not None and view.deadline.reason is Reason.BY_HAND):
        return room
    taken_up = replace(view, recovery=Recovery.NONE, error="", evict="")
    return _with_deadline(room, taken_up, event.fact.at, Reason.BY_HAND)


# --- where the presence rules left the room ----------------------------------------------------------


def _reset(view: AgentView) -> AgentView:
    """Nothing under way and nothing counted: the one reset of an agent's recovery."""
    return replace(
        view,
        deadline=None,
        recovery=Recovery.NONE,
        redispatches=0,
        error="",
        evict="",
        stale_dispatches=(),
        full=False,
        unjoined=(),
        let_go="",
    )


def resolved(room: Room, view: AgentView, event: Event, policy: Policy) -> Room:
    """No agent is needed now (or one is working): the incident, if any, is over."""
    return room.put(_reset(view))


def stand_down(room: Room, view: AgentView, event: Event, policy: Policy) -> Room:
    """The room is over: nothing left to watch or to do."""
    return at_rest(room, view)


def at_rest(room: Room, view: AgentView) -> Room:
    """The room with the agent's part no longer in recovery and without a deadline."""
    return room.put(replace(view, recovery=Recovery.NONE, deadline=None))


def closed_failed(room: Room, view: AgentView, event: Event, policy: Policy) -> Room:
    """A failed agent's part of a room that finished stays failed, for the record; nothing to watch."""
    return room.put(replace(view, deadline=None))


def _with_deadline(room: Room, view: AgentView, at: float, reason: Reason) -> Room:
    """`view` with a deadline numbered next in the room: numbers only go up, so that a timer or an
    answer belongs to one deadline of one agent."""
    attempt = room.attempt + 1
    return replace(room.put(replace(view, deadline=Deadline(attempt, at, reason))), attempt=attempt)


def watch_agent(room: Room, view: AgentView, event: Event, policy: Policy) -> Room:
    """Our agent is there; with `active_sla` it must publish or heartbeat by an ACTIVE deadline, and one
    in a stuck-prone state (`liveness`) must leave it by a STUCK deadline: the earlier is watched."""
    due = [] if policy.active_sla is None else [(_joined(room, policy) + policy.active_sla, Reason.ACTIVE)]
    return _watch(room, view, event, policy, due)


def watch_active(room: Room, view: AgentView, event: Event, policy: Policy) -> Room:
    """Our agent is working: the incident, if any, is over; one in a stuck-prone state while people are
    there (`liveness`) must leave it by a STUCK deadline."""
    return _watch(room, view, event, policy, [])


def _watch(
    room: Room, view: AgentView, event: Event, policy: Policy, due: list[tuple[float, Reason]]
) -> Room:
    """Watch the earliest of `due` and the stuck deadline, if any (a deadline already set for it kept)."""
    stuck = stuck_due(room, policy)
    due = [*due, stuck] if stuck is not None else due
    if not due:
        return resolved(room, view, event, policy)
    at, reason = min(due)
    current = view.deadline
    if current is not None and current.reason is reason and (reason is Reason.ACTIVE or current.at == at):
        return room  # already watched
    return _with_deadline(room, _reset(view), at, reason)


def _joined(room: Room, policy: Policy) -> float:
    return max(a.joined_at for a in room.our_agents(policy))


def remove_copy(room: Room, view: AgentView, event: Event, policy: Policy) -> Room:
    """Two copies of our agent are in the room (a late agent beside its replacement, a dispatch served
    twice): ask LiveKit at once, and remove the later one (a DUPLICATE deadline, due now). Our agent is
    there, so whatever was under way is over."""
    if view.deadline is not None and view.deadline.reason is Reason.DUPLICATE:
        return room
    return _with_deadline(room, _reset(view), event.at, Reason.DUPLICATE)


def let_check_decide(room: Room, view: AgentView, event: Event, policy: Policy) -> Room:
    """A step under way while our agent is there: a stalled- or stuck-agent check decides for itself; any
    other step (the agent was missing) is moot now."""
    if view.deadline is not None and view.deadline.reason in WATCH_REASONS:
        return room
    return watch_agent(room, view, event, policy)


def let_stuck_decide(room: Room, view: AgentView, event: Event, policy: Policy) -> Room:
    """A step under way while our agent is working: the stuck-agent check decides for itself (a stuck
    agent may have published a track long ago); any other step is moot now."""
    if view.deadline is not None and view.deadline.reason in STUCK_REASONS:
        return room
    return resolved(room, view, event, policy)


def await_join(room: Room, view: AgentView, event: Event, policy: Policy) -> Room:
    """People wait for an agent: one must join `join_sla` after the first of them arrived (or after
    `room_started`, by policy). A deadline already set (but a stalled- or stuck-agent one) keeps running."""
    if view.deadline is not None and view.deadline.reason not in WATCH_REASONS:
        return room
    assert view.waiting_since is not None  # set on entering a waiting phase
    since = view.waiting_since
    if policy.sla_from_room_start and room.started_at is not None:
        since = room.started_at
    return _with_deadline(room, view, since + policy.join_sla, Reason.JOIN)


def await_rejoin(room: Room, view: AgentView, event: Event, policy: Policy) -> Room:
    """Our agent left while people remain: one must be back `rejoin_sla` after it left."""
    if view.deadline is not None and view.deadline.reason not in WATCH_REASONS:
        return room
    assert view.waiting_since is not None  # set on entering a waiting phase
    return _with_deadline(room, view, view.waiting_since + policy.rejoin_sla, Reason.REJOIN)

"""Every agent a room needs: one view of the room per expected agent. Pure, like `workers.core.machine`.

A room may expect several agents (a voice assistant and a notetaker), each with its own presence, SLA,
deadlines, re-dispatches and recovery. `Room` holds the room as a whole (`base`: who is there) and
one `AgentView` per expected agent (`views`), each moved by the one-agent machine (`machine.transition`)
with the policy for that agent. The rules, in plain words:

1. Expected agents are the union of the room's dispatches as `ListDispatch` reports them (a non-empty
   `agent_name`; the empty-name automatic dispatch only where the rule says `unnamed_agents`), the agents
   of `agent_job_started` events, and the agents of the room's rule (or `WARDEN_AGENT_NAME`). Each is
   learned once, with where it came from (`sources`), and recorded in the timeline (`Expect`).
2. Before any is known (no rule, no setting), the room's own watch (`base`, counting no agent as
   "ours") sets the join deadline when people arrive and asks LiveKit when it passes: the dispatches it
   lists are the agents the room expects. A room whose answer names none expects no agent and is left
   alone: Warden never creates a dispatch for it. After that the base only follows who is there.
3. A view learned while people wait starts as if it had watched from the first person's arrival: an
   agent of its name there → watched; missing → its join deadline is that arrival plus `join_sla`
   (already past when learned late: it fires at once, and the view asks LiveKit itself before acting).
4. Deadline attempts are numbered room-wide and only go up (the base keeps the count, also when a view
   goes), so a timer or an answer (`Fact.attempt`) belongs to exactly one view; the others take
   LiveKit's listing in an answer as news of who is there. A restart (`AGENT_RESTARTED`) is for the view
   of the restarted agent (`Fact.agent`).
5. A phone caller (a participant of kind SIP) makes the room a SIP room for good (`AgentView.sip`), which
   may match a rule of its own (`sip = true`) with its own SLA, run from the caller's arrival.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

from workers.core.events import Event, EventKind
from workers.core.machine import RECOVERY, order_key, settled, transition
from workers.core.machine import known_state as known
from workers.core.machine import new_actions as machine_new_actions
from workers.core.plain import from_plain
from workers.core.room import Action, AgentView, Expect, Phase, Policy, Recovery, room_to_dict
from workers.core.rules import DISPATCH, JOB, RULE, SETTING, Rule, Rules

# Warden's own events that belong to one deadline attempt (`Fact.attempt`), hence to one view.
_ATTEMPT_EVENTS = frozenset(
    {
        EventKind.DEADLINE_PASSED,
        EventKind.PRESENCE_OBSERVED,
        EventKind.AGENT_EVICTED,
        EventKind.AGENT_DISPATCHED,
        EventKind.UPSTREAM_FAILED,
    }
)


@dataclass(frozen=True)
class Room:
    base: AgentView  # the room as a whole; its own watch until the expected agents are known
    views: tuple[AgentView, ...] = ()  # one per expected agent, in the order learned
    learned: bool = False  # LiveKit was asked, or a rule named the agents: the base no longer watches

    @property
    def sid(self) -> str:
        return self.base.sid

    @property
    def name(self) -> str:
        return self.base.name

    def view(self, agent: str) -> AgentView | None:
        return next((v for v in self.views if v.agent == agent), None)

    def all(self) -> tuple[AgentView, ...]:
        """Every view that can have a deadline: the base while it watches, then the agents'."""
        return self.views if self.learned else (self.base, *self.views)

    def for_attempt(self, attempt: int) -> AgentView | None:
        return next((v for v in self.all() if v.deadline is not None and v.deadline.attempt == attempt), None)

    @property
    def attempt(self) -> int:
        return max((v.attempt for v in (self.base, *self.views)), default=0)


def view_for(room: Room, agent: str) -> AgentView:
    """The view an action about `agent` is carried out for (an action recorded before views existed
    names no agent: the room's first expected agent's, else the room's own)."""
    found = room.view(agent)
    if found is not None:
        return found
    return room.views[0] if room.views and not agent else room.base


def new(sid: str, name: str) -> Room:
    return Room(AgentView(sid, name))


def view_policy(room: Room, view: AgentView, policy: Policy) -> Policy:
    """The policy for one view: its agent's name; the base counts no agent while it watches for them
    (any agent once they are known: its phase then says whether some agent is there)."""
    if view is room.base:
        return replace(policy, agent_name="", discovering=not room.learned)
    return replace(policy, agent_name=view.agent)


def policy_of(room: Room, view: AgentView, rules: Rules) -> Policy:
    """The policy `view` of `room` is moved by: its room's rule, then `view_policy`."""
    policy, _ = rules.policy_for(room.name, room.base.sip)
    return view_policy(room, view, policy)


def step(room: Room, event: Event, *, now: float, rules: Rules) -> tuple[Room, tuple[Action, ...]]:
    """Apply one event to the room and each of its views; learn the agents it declares."""
    participant = event.participant
    sip = room.base.sip or (participant is not None and participant.is_caller)
    name = room.name or event.room_name
    policy, rule = rules.policy_for(name, sip)
    top = room.attempt  # attempts only go up, even when a view goes: a number is never given twice
    if rule.agents is not None and not room.learned:  # the rule names the agents: nothing to discover
        room = Room(_quiet(room.base, room.base.attempt), room.views, True)
    # A caller's arrival may change the room's rule: agents only a rule that no longer applies named
    # are not expected any more.
    named = set(rule.agents or ())
    kept = tuple(v for v in room.views if v.agent in named or not set(v.sources) <= {RULE, SETTING})
    if len(kept) != len(room.views):
        room = Room(room.base, kept, room.learned)
    target = _target(room, event)
    actions: list[Action] = []
    attempt = max(top, room.attempt)
    discovered = event.kind is EventKind.PRESENCE_OBSERVED and target is room.base and not room.learned
    # The base's own answer only tells who is there (with reconciliation's grace for joins the listing
    # may predate) and which agents the room expects: the base never acts on it.
    seen = replace(event, kind=EventKind.RECONCILED) if discovered else event
    base, decided = _apply(room, room.base, seen, target, now, policy, attempt)
    base = replace(base, sip=sip)
    if room.learned:  # the base only follows who is there
        base = _quiet(base, room.base.attempt)
    else:
        actions += decided
    attempt = max(attempt, base.attempt)
    views: list[AgentView] = []
    for view in room.views:
        moved, decided = _apply(room, view, event, target, now, policy, attempt)
        attempt = max(attempt, moved.attempt)
        views.append(replace(moved, sip=sip))
        actions += decided
    learned = room.learned
    if discovered:
        learned = True  # the base's question is answered: the dispatches are what the room expects
        base = _quiet(base, base.attempt)
        actions = [a for a in actions if getattr(a, "agent", None) != ""]
    for agent, source in _declared(event, rule, target is room.base or room.learned):
        known = next((i for i, v in enumerate(views) if v.agent == agent), None)
        if known is not None:
            if source not in views[known].sources:
                views[known] = replace(views[known], sources=(*views[known].sources, source))
            continue
        fresh = _adopt(base, agent, source, event, now, replace(policy, agent_name=agent), attempt)
        attempt = max(attempt, fresh.attempt)
        views.append(fresh)
        said = [Expect(agent, source)] if source != SETTING else []  # `WARDEN_AGENT_NAME`: as before
        actions += [*said, *_start_actions(fresh, replace(policy, agent_name=agent))]
    base = replace(base, attempt=max(base.attempt, attempt))  # the base keeps the room-wide count
    return Room(base, tuple(views), learned), tuple(actions)


def _quiet(base: AgentView, attempt: int) -> AgentView:
    return replace(
        base, recovery=Recovery.NONE, deadline=None, redispatches=0, error="", evict="", attempt=attempt
    )


def _target(room: Room, event: Event) -> AgentView | None:
    """The view one of Warden's own events is for (None: every view, or none for a stale one)."""
    fact = event.fact
    if fact is None:
        return None
    if event.kind in _ATTEMPT_EVENTS:
        return room.for_attempt(fact.attempt)
    if event.kind is EventKind.AGENT_RESTARTED:
        return room.view(fact.agent) if fact.agent else (room.views[0] if room.views else room.base)
    return None


def _apply(
    room: Room,
    view: AgentView,
    event: Event,
    target: AgentView | None,
    now: float,
    policy: Policy,
    attempt: int,
) -> tuple[AgentView, tuple[Action, ...]]:
    """`event` through one view: its own event as such, another view's answer as news of who is there."""
    mine = event
    own = event.fact is not None and event.kind in (*_ATTEMPT_EVENTS, EventKind.AGENT_RESTARTED)
    if own and view is not target:
        if event.kind is not EventKind.PRESENCE_OBSERVED or target is None:
            return replace(view, updated_at=now), ()  # another view's, or stale
        mine = replace(event, kind=EventKind.RECONCILED)  # LiveKit's listing: who is there
    moved = replace(view, attempt=attempt)
    decision = transition(moved, mine, now=now, policy=view_policy(room, view, policy))
    return decision.room, decision.actions


def _declared(event: Event, rule: Rule, listing_counts: bool) -> Iterable[tuple[str, str]]:
    """(agent, source) pairs the event or the rule says the room expects, in a stable order."""
    if rule.agents:
        yield from ((agent, rule.source) for agent in rule.agents)
    if event.kind is EventKind.AGENT_JOB_STARTED and event.job is not None and event.job.agent_name:
        yield event.job.agent_name, JOB
    if event.kind is EventKind.PRESENCE_OBSERVED and event.fact is not None and listing_counts:
        names = sorted({d.agent_name for d in event.fact.dispatches if d.agent_name or rule.unnamed_agents})
        yield from ((name, DISPATCH) for name in names)


def _adopt(
    base: AgentView, agent: str, source: str, event: Event, now: float, policy: Policy, attempt: int
) -> AgentView:
    """A new view for `agent`, as if it had been watched since the first person present arrived."""
    ours = tuple(a for a in base.agents if policy.counts(a.name))
    if base.finished_at is not None:
        phase = Phase.CLOSED
    elif ours:
        phase = Phase.AGENT_ACTIVE if any(a.active_at is not None for a in ours) else Phase.AGENT_PRESENT
    else:
        phase = Phase.WAITING if base.people else Phase.IDLE
    view = AgentView(
        base.sid,
        base.name,
        phase=phase,
        people=base.people,
        agents=base.agents,
        started_at=base.started_at,
        finished_at=base.finished_at,
        first_person_at=base.first_person_at,
        agent_joined_at=min((a.joined_at for a in ours), default=None),
        waiting_since=min(p.joined_at for p in base.people) if phase is Phase.WAITING else None,
        updated_at=now,
        attempt=attempt,
        agent=agent,
        sources=(source,),
        sip=base.sip,
        # `WARDEN_DISPATCH_ON_START`: Warden makes the first dispatch of an agent a rule names
        dispatched_on_start=policy.dispatch_on_start and phase is Phase.WAITING and source in (RULE, SETTING),
    )
    return RECOVERY[(Recovery.NONE, settled(Phase.IDLE, phase, event))](view, event, policy)


def _start_actions(view: AgentView, policy: Policy) -> tuple[Action, ...]:
    return machine_new_actions(replace(view, deadline=None, dispatched_on_start=False), view, policy)


def changes(room: Room, event: Event, *, now: float, rules: Rules) -> bool:
    """Would `event` change anything Warden knows of the room, or decide anything? (See
    `machine.changes`: a check that only confirms what is known is not worth a line in the log.)"""
    after, actions = step(room, event, now=now, rules=rules)
    return bool(actions) or _known(after) != _known(room)


def _known(room: Room) -> Room:
    return Room(known(room.base), tuple(known(v) for v in room.views), room.learned)


def new_actions(before: Room, after: Room, rules: Rules) -> tuple[Action, ...]:
    """What `after` (a re-fold) asks for that `before` did not, view by view."""
    actions: list[Action] = []
    if not after.learned:
        actions += machine_new_actions(before.base, after.base, policy_of(after, after.base, rules))
    for view in after.views:
        was = before.view(view.agent)
        if was is None:
            actions += [Expect(view.agent, s) for s in view.sources[:1] if s != SETTING]
            was = replace(view, deadline=None, recovery=Recovery.NONE, redispatches=0)
        actions += machine_new_actions(was, view, policy_of(after, view, rules))
    return tuple(actions)


def renamed(room: Room, name: str) -> Room:
    return Room(replace(room.base, name=name), tuple(replace(v, name=name) for v in room.views), room.learned)


def fold(room: Room, events: Iterable[tuple[Event, float]], *, rules: Rules) -> Room:
    """Apply `(event, received_at)` pairs in `order_key` order."""
    for event, received_at in sorted(events, key=lambda pair: order_key(pair[0])):
        room, _ = step(room, event, now=received_at, rules=rules)
    return room


# --- the room as one row ----------------------------------------------------------------------------

_NEED = {
    Phase.AGENT_LOST: 0,
    Phase.WAITING: 1,
    Phase.AGENT_PRESENT: 2,
    Phase.AGENT_ACTIVE: 3,
    Phase.IDLE: 4,
    Phase.CLOSED: 5,
}
_URGENCY = {
    Recovery.FAILED: 0,
    Recovery.REDISPATCHING: 1,
    Recovery.EVICTING: 2,
    Recovery.CHECKING: 3,
    Recovery.NONE: 4,
}


def summary(room: Room) -> AgentView:
    """The view most in need of an agent (the room's own watch while no agent is known): what the room's
    row shows as its phase and recovery. A room that expects no agent shows as idle: nobody waits."""
    candidates = room.all() or (room.base,)
    if room.learned and not room.views:  # expects no agent: nobody waits for one
        idle = room.base.phase is not Phase.CLOSED
        return replace(room.base, phase=Phase.IDLE, waiting_since=None) if idle else room.base
    return min(candidates, key=lambda v: (_URGENCY[v.recovery], _NEED[v.phase]))


def next_deadline(room: Room) -> float | None:
    return min((v.deadline.at for v in room.all() if v.deadline is not None), default=None)


def to_dict(room: Room) -> dict[str, Any]:
    views = [room_to_dict(v) for v in room.views]
    return {**room_to_dict(room.base), "views": views, "learned": room.learned}


def from_dict(data: dict[str, Any], *, legacy_agent: str = "") -> Room:
    """Inverse of `to_dict` (the base's fields beside `views` and `learned`). A row written before views
    existed holds one room, watched for `WARDEN_AGENT_NAME` (a view of that agent) or for any agent (the
    base, as it was)."""
    base = from_plain(AgentView, data)  # `views` and `learned` are not its fields: left out
    if "views" in data:
        return Room(base, tuple(from_plain(AgentView, v) for v in data["views"]), bool(data.get("learned")))
    if legacy_agent:
        view = replace(base, agent=legacy_agent, sources=("setting",))
        quiet = replace(base, recovery=Recovery.NONE, deadline=None, redispatches=0, error="")
        return Room(quiet, (view,), True)
    return Room(base)

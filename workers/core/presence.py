"""The presence rules of the room state machine: who is in the room after an event. Pure, like
`workers.core.machine`, whose `TABLE` says in which phase each applies; the rules are stated in plain
words at the top of that module. None of them touches the recovery fields: `workers.core.recovery`
owns those.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import replace

from workers.core.events import Event, Participant
from workers.core.room import Agent, AgentView, Person, Policy

RECONCILE_GRACE_SECONDS = 10.0


def start(room: AgentView, event: Event, policy: Policy) -> AgentView:
    return room if room.started_at is not None else replace(room, started_at=event.at)


def finish(room: AgentView, event: Event, policy: Policy) -> AgentView:
    return replace(room, finished_at=event.at, people=(), agents=())


def join(room: AgentView, event: Event, policy: Policy) -> AgentView:
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


def leave(room: AgentView, event: Event, policy: Policy) -> AgentView:
    p = event.participant
    if p is None:
        return room
    gone = _same_session(p.identity, p.sid)
    return replace(
        room,
        people=tuple(x for x in room.people if not gone(x)),
        agents=tuple(a for a in room.agents if not gone(a)),
    )


def activity(room: AgentView, event: Event, policy: Policy) -> AgentView:
    """A track published, or a heartbeat: the agent with that identity is working."""
    p = event.participant
    if p is None:
        return room
    is_it = _same_session(p.identity, p.sid)
    agents = tuple(
        replace(a, active_at=event.at) if is_it(a) and a.active_at is None else a for a in room.agents
    )
    return replace(room, agents=agents)


def job_ended(room: AgentView, event: Event, policy: Policy) -> AgentView:
    if event.job is None or not event.job.participant_identity:
        return room
    identity = event.job.participant_identity
    return replace(room, agents=tuple(a for a in room.agents if a.identity != identity))


def reconcile(
    room: AgentView, participants: Iterable[Participant], at: float, *, keep_since: float | None = None
) -> AgentView:
    """Who is in the room is what LiveKit listed; with `keep_since`, participants Warden saw join at or
    after that moment stay even if the list lacks them (the list may predate their join)."""
    known_people: dict[str, Person | None] = {p.identity: p for p in room.people}
    known_agents: dict[str, Agent | None] = {a.identity: a for a in room.agents}
    people, agents = [], []
    for p in participants:
        if p.is_agent:
            agents.append(
                known_agents.pop(p.identity, None)
                or Agent(p.identity, p.sid, p.agent_name, p.joined_at or at)
            )
        elif p.is_person:
            people.append(known_people.pop(p.identity, None) or Person(p.identity, p.sid, p.joined_at or at))
    if keep_since is not None:
        people += [p for p in known_people.values() if p is not None and p.joined_at >= keep_since]
        agents += [a for a in known_agents.values() if a is not None and a.joined_at >= keep_since]
    return replace(room, people=tuple(people), agents=tuple(agents))


def reconciled(room: AgentView, event: Event, policy: Policy) -> AgentView:
    """The periodic comparison with LiveKit: a room it no longer has is finished (the recovery table
    stands down on `room_gone`); otherwise who is there is what LiveKit says (people Warden never heard
    of keep LiveKit's join time), except that whoever joined within `RECONCILE_GRACE_SECONDS` of the
    listing stays: the listing is taken before it is recorded, and a join in between (webhook times are
    whole seconds) must not be undone — that would make a present agent "lost" and re-dispatch a
    second one."""
    fact = event.fact
    if fact is None:
        return room
    if not fact.room_exists:
        return replace(room, finished_at=fact.at, people=(), agents=())
    return reconcile(room, fact.participants, fact.at, keep_since=fact.at - RECONCILE_GRACE_SECONDS)

"""The presence rules of the room state machine: who is in the room after an event, held once for the
room, and the phase each expected agent sees in it. Pure, like `workers.core.machine`, whose `TABLE`
says in which phase each rule applies; the rules are stated in plain words at the top of that module.
None of them touches an agent's recovery: `workers.core.recovery` owns that.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import replace

from workers.core.events import Event, Fact, Participant
from workers.core.liveness import seen
from workers.core.room import Agent, Person, Phase, Policy, Room

Presence = Callable[[Room, Event, Policy], Room]  # a presence rule (or `machine.recover`): a cell of `TABLE`
RECONCILE_GRACE_SECONDS = 10.0
# The room's own watch, and the room as a whole: people count, no agent is "ours".
NO_AGENT = Policy(discovering=True)
_HERE_BEFORE = (Phase.AGENT_PRESENT, Phase.AGENT_ACTIVE, Phase.AGENT_LOST)


def phase_of(room: Room, before: Phase, policy: Policy) -> Phase:
    """The phase of the room for the agent `policy` names, after `before`: closed once finished;
    agent_active or agent_present while an agent of ours is there; idle with nobody; agent_lost when
    people remain and our agent was there just before (so while people come and go); else waiting."""
    if room.finished_at is not None:
        return Phase.CLOSED
    ours = room.our_agents(policy)
    if ours:
        return Phase.AGENT_ACTIVE if any(a.active_at is not None for a in ours) else Phase.AGENT_PRESENT
    if not room.someone_here:
        return Phase.IDLE
    return Phase.AGENT_LOST if before in _HERE_BEFORE else Phase.WAITING


def room_phase(room: Room) -> Phase:
    """The phase of the room as a whole (its own watch's): closed, idle, or waiting while people are in
    it — no_agent_expected instead once LiveKit was asked and named no agent (nobody waits for one).
    Who is there does not depend on whose phase reads the presence rules: they are the same in every
    open phase."""
    phase = phase_of(room, Phase.IDLE, NO_AGENT)
    if phase is Phase.WAITING and room.learned and not room.views:
        return Phase.NO_AGENT_EXPECTED
    return phase


def start(room: Room, event: Event, policy: Policy) -> Room:
    return room if room.started_at is not None else replace(room, started_at=event.at)


def finish(room: Room, event: Event, policy: Policy) -> Room:
    return finished(room, event.at)


def finished(room: Room, at: float) -> Room:
    return replace(room, finished_at=at, people=(), agents=(), people_unlisted=0)


def join(room: Room, event: Event, policy: Policy) -> Room:
    p = event.participant
    if p is None:
        return room
    if p.is_agent:
        agents = tuple(a for a in room.agents if a.identity != p.identity)
        joined = seen(Agent(p.identity, p.sid, p.agent_name, event.at), p.state, event.at)
        return replace(room, agents=(*agents, joined))
    if p.is_person:
        people = tuple(x for x in room.people if x.identity != p.identity)
        first = room.first_person_at if room.first_person_at is not None else event.at
        if len(people) == len(room.people) and len(people) >= policy.people_listed:  # beyond the list
            return replace(room, people_unlisted=room.people_unlisted + 1, first_person_at=first)
        return replace(room, people=(*people, Person(p.identity, p.sid, event.at)), first_person_at=first)
    return room


def capped(room: Room, listed: int) -> Room:
    """The room listing at most `listed` people, the rest counted in `people_unlisted`."""
    if len(room.people) <= listed:
        return room
    extra = len(room.people) - listed
    return replace(room, people=room.people[:listed], people_unlisted=room.people_unlisted + extra)


def _same_session(identity: str, sid: str) -> Callable[[Person | Agent], bool]:
    return lambda x: x.identity == identity and (not sid or not x.sid or x.sid == sid)


def leave(room: Room, event: Event, policy: Policy) -> Room:
    p = event.participant
    if p is None:
        return room
    gone = _same_session(p.identity, p.sid)
    people = tuple(x for x in room.people if not gone(x))
    agents = tuple(a for a in room.agents if not gone(a))
    unlisted = room.people_unlisted
    known = any(x.identity == p.identity for x in room.people) or any(
        a.identity == p.identity for a in room.agents
    )
    if unlisted and p.is_person and not known:
        unlisted -= 1  # someone Warden only counted
    return replace(room, people=people, agents=agents, people_unlisted=unlisted)


def activity(room: Room, event: Event, policy: Policy) -> Room:
    """A track published, or a heartbeat: the agent with that identity is working."""
    p = event.participant
    if p is None:
        return room
    is_it = _same_session(p.identity, p.sid)
    agents = tuple(
        replace(a, active_at=event.at) if is_it(a) and a.active_at is None else a for a in room.agents
    )
    return replace(room, agents=agents)


def job_ended(room: Room, event: Event, policy: Policy) -> Room:
    if event.job is None or not event.job.participant_identity:
        return room
    identity = event.job.participant_identity
    return replace(room, agents=tuple(a for a in room.agents if a.identity != identity))


def listed(room: Room, fact: Fact) -> Room:
    """Who is there, as LiveKit listed it at `fact.at` (reconciliation's listing, or the answer to a
    check): a room it no longer has is finished; otherwise its participants replace the room's (people
    Warden never heard of keep LiveKit's join time), except that whoever joined within
    `RECONCILE_GRACE_SECONDS` of the listing stays: the listing is taken before it is recorded, and a
    join in between (webhook times are whole seconds) must not be undone — that would make a present
    agent "lost", re-dispatch a second one, or forget that it was working."""
    if not fact.room_exists:
        return finished(room, fact.at)
    return _reconcile(room, fact.participants, fact.at, keep_since=fact.at - RECONCILE_GRACE_SECONDS)


def _reconcile(room: Room, participants: Iterable[Participant], at: float, *, keep_since: float) -> Room:
    """Who is in the room is what LiveKit listed; participants Warden saw join at or after `keep_since`
    stay even if the list lacks them (the list may predate their join). An agent listed with a published
    track is working, whether or not its `track_published` has been heard yet: a check judges by what
    LiveKit says when it runs."""
    known_people: dict[str, Person | None] = {p.identity: p for p in room.people}
    known_agents: dict[str, Agent | None] = {a.identity: a for a in room.agents}
    people, agents = [], []
    for p in participants:
        if p.is_agent:
            agent = known_agents.pop(p.identity, None) or Agent(
                p.identity, p.sid, p.agent_name, p.joined_at or at
            )
            agent = seen(agent, p.state, at)  # its `lk.agent.state`, since Warden first saw it
            if p.publishing and agent.active_at is None:  # its track_published may not have come yet
                agent = replace(agent, active_at=at)
            agents.append(agent)
        elif p.is_person:
            people.append(known_people.pop(p.identity, None) or Person(p.identity, p.sid, p.joined_at or at))
    people += [p for p in known_people.values() if p is not None and p.joined_at >= keep_since]
    # LiveKit lists in no set order: those listed already first, as they were, so that the cap keeps
    # them listed (`capped`) and a listing of the same people is no news
    place = {p.identity: i for i, p in enumerate(room.people)}
    people.sort(key=lambda p: place.get(p.identity, len(place)))
    agents += [a for a in known_agents.values() if a is not None and a.joined_at >= keep_since]
    # the listing counts everyone: `machine.transition` lists the first people again, counts the rest
    return replace(room, people=tuple(people), agents=tuple(agents), people_unlisted=0)


def reconciled(room: Room, event: Event, policy: Policy) -> Room:
    """The periodic comparison with LiveKit: who is there is what it lists (`listed`); a room it no
    longer has is finished, and the recovery table stands down on `room_gone`."""
    return room if event.fact is None else listed(room, event.fact)

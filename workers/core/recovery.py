"""The recovery rules of the room state machine: Warden's own events (timers, LiveKit's answers, the
outcomes of its actions) and what they do to a room. Pure, like `workers.core.machine`, whose `TABLE` maps
them; the rules are stated in plain words at the top of `workers.core.machine`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

from workers.core.events import Event, Participant
from workers.core.room import Agent, Deadline, Person, Policy, Reason, Recovery, Room

RECONCILE_GRACE_SECONDS = 10.0


def _answers(room: Room, event: Event, expected: Recovery) -> bool:
    """Is `event` the answer to the step the room is waiting on (same attempt, same recovery step)?"""
    fact = event.fact
    return (
        fact is not None
        and room.recovery is expected
        and room.deadline is not None
        and fact.attempt == room.deadline.attempt
    )


def deadline_passed(room: Room, event: Event, policy: Policy) -> Room:
    fact, deadline = event.fact, room.deadline
    if fact is None or deadline is None or room.recovery is not Recovery.NONE:
        return room
    if fact.attempt != deadline.attempt or fact.at < deadline.at:
        return room  # a stale timer, or an early one
    return replace(room, recovery=Recovery.CHECKING)


def _reconcile(
    room: Room, participants: Iterable[Participant], at: float, *, keep_since: float | None = None
) -> Room:
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


def presence_observed(room: Room, event: Event, policy: Policy) -> Room:
    if not _answers(room, event, Recovery.CHECKING) or event.fact is None or room.deadline is None:
        return room
    fact, reason = event.fact, room.deadline.reason
    if not fact.room_exists:
        return replace(room, finished_at=fact.at, people=(), agents=(), recovery=Recovery.NONE, deadline=None)
    room = _reconcile(room, fact.participants, fact.at)
    ours = room.our_agents(policy)
    stalled = reason is Reason.ACTIVE and bool(ours) and all(a.active_at is None for a in ours)
    if (ours and not stalled) or not room.people:
        return replace(room, recovery=Recovery.NONE, deadline=None)
    if room.redispatches >= policy.max_redispatches:
        return _failed(room, f"no agent after {room.redispatches} re-dispatch(es)")
    mine = sorted(
        (d for d in fact.dispatches if d.agent_name == policy.agent_name), key=lambda d: d.created_at
    )
    metadata = mine[0].metadata if mine else room.dispatch_metadata
    room = replace(room, stale_dispatches=tuple(d.id for d in mine), dispatch_metadata=metadata)
    if stalled:
        return replace(room, recovery=Recovery.EVICTING, evict=ours[0].identity)
    return replace(room, recovery=Recovery.REDISPATCHING)


def agent_evicted(room: Room, event: Event, policy: Policy) -> Room:
    if not _answers(room, event, Recovery.EVICTING):
        return room
    agents = tuple(a for a in room.agents if a.identity != room.evict)
    return replace(room, agents=agents, evict="", recovery=Recovery.REDISPATCHING)


def agent_dispatched(room: Room, event: Event, policy: Policy) -> Room:
    if not _answers(room, event, Recovery.REDISPATCHING) or event.fact is None:
        return room
    count = room.redispatches + 1
    attempt = room.attempt + 1
    deadline = Deadline(attempt, event.fact.at + policy.join_sla * 2 ** (count - 1), Reason.CONFIRM)
    return replace(
        room,
        recovery=Recovery.NONE,
        redispatches=count,
        dispatch_id=event.fact.dispatch_id,
        stale_dispatches=(),
        attempt=attempt,
        deadline=deadline,
    )


def upstream_failed(room: Room, event: Event, policy: Policy) -> Room:
    for step in (Recovery.CHECKING, Recovery.EVICTING, Recovery.REDISPATCHING):
        if _answers(room, event, step) and event.fact is not None:
            return _failed(room, f"LiveKit refused: {event.fact.error}")
    return room


def _failed(room: Room, reason: str) -> Room:
    return replace(room, recovery=Recovery.FAILED, error=reason, deadline=None, evict="", stale_dispatches=())


def agent_restarted(room: Room, event: Event, policy: Policy) -> Room:
    """The agent was restarted (an outage's escalation): a room still waiting gets a fresh start, a
    confirm deadline once the restart has had `restart_grace` to bring workers up."""
    if event.fact is None or room.recovery not in (Recovery.NONE, Recovery.FAILED):
        return room
    if not room.people or room.our_agents(policy):
        return room
    attempt = room.attempt + 1
    deadline = Deadline(attempt, event.fact.at + policy.restart_grace, Reason.CONFIRM)
    return replace(room, recovery=Recovery.NONE, redispatches=0, error="", attempt=attempt, deadline=deadline)


def reconciled(room: Room, event: Event, policy: Policy) -> Room:
    """The periodic comparison with LiveKit: a room it no longer has is finished; otherwise who is
    there is what LiveKit says (people Warden never heard of keep LiveKit's join time), except that
    whoever joined within `RECONCILE_GRACE_SECONDS` of the listing stays: the listing is taken before
    it is recorded, and a join in between (webhook times are whole seconds) must not be undone — that
    would make a present agent "lost" and re-dispatch a second one."""
    fact = event.fact
    if fact is None:
        return room
    if not fact.room_exists:
        return replace(room, finished_at=fact.at, people=(), agents=(), recovery=Recovery.NONE, deadline=None)
    return _reconcile(room, fact.participants, fact.at, keep_since=fact.at - RECONCILE_GRACE_SECONDS)

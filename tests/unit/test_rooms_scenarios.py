"""Whole room lives through the pure state machine, with one expected agent (`WARDEN_AGENT_NAME`, or an
agent that gives no name): what an operator would see at each step."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from workers.core.actions import pending_actions
from workers.core.events import (
    INTERNAL_KINDS,
    Event,
    EventKind,
    Fact,
    Job,
    Participant,
    ParticipantKind,
    internal,
)
from workers.core.machine import fold, transition
from workers.core.order import LIFECYCLE_RANK, is_webhook, newest_after, placed, second_of
from workers.core.room import AgentView, Phase, Policy, Recovery, Room, ScheduleDeadline
from workers.core.rules import DISPATCH, Rules

POLICY = Policy("notetaker")
RULES = Rules.of((), POLICY)
# A room that expects an agent that gives no name (learned from automatic dispatch), with no agent
# configured: any agent is ours.
ANY_AGENT = Room("RM_1", "call-42", watch=None, views=(AgentView("", (DISPATCH,)),))
NO_AGENT_CONFIGURED = Rules.of((), Policy())
_counter = iter(range(1, 10**9))


def ev(
    kind: EventKind,
    at: int,
    who: str | None = None,
    *,
    agent: bool = False,
    sid: str = "",
    name: str = "notetaker",
    kind_of: ParticipantKind | None = None,
    job: Job | None = None,
) -> Event:
    participant = None
    if who is not None:
        is_membership = kind in (
            EventKind.PARTICIPANT_JOINED,
            EventKind.PARTICIPANT_LEFT,
            EventKind.PARTICIPANT_CONNECTION_ABORTED,
        )
        k = kind_of if kind_of is not None else (ParticipantKind.AGENT if agent else ParticipantKind.STANDARD)
        participant = Participant(
            who, sid or f"PA_{who}", int(k) if is_membership else None, name if agent else ""
        )
    return Event(f"EV_{next(_counter)}", kind, str(kind), at, "RM_1", "call-42", participant, "", job)


NEW = Room("RM_1", "call-42")


def run(*events: Event, room: Room = NEW, rules: Rules = RULES) -> tuple[Room, AgentView]:
    """The room after `events`, and its one expected agent's part."""
    for event in events:
        room = transition(room, event, now=float(event.created_at), rules=rules).room
    return room, room.views[0]


def test_a_meeting_with_its_agent_from_start_to_finish() -> None:
    J, L, T = EventKind.PARTICIPANT_JOINED, EventKind.PARTICIPANT_LEFT, EventKind.TRACK_PUBLISHED
    room, view = run(ev(EventKind.ROOM_STARTED, 100), ev(J, 101, "alice"))
    assert (view.phase, view.waiting_since, room.first_person_at) == (Phase.WAITING, 101, 101)
    _, view = run(ev(EventKind.ROOM_STARTED, 100), ev(J, 101, "alice"), ev(J, 104, "agent-1", agent=True))
    assert (view.phase, view.agent_joined_at, view.waiting_since) == (Phase.AGENT_PRESENT, 104, None)
    room, view = run(
        ev(EventKind.ROOM_STARTED, 100),
        ev(J, 101, "alice"),
        ev(J, 104, "agent-1", agent=True),
        ev(T, 105, "agent-1"),
        ev(J, 110, "bob"),
        ev(L, 200, "alice"),
        ev(L, 201, "bob"),
        ev(L, 202, "agent-1", agent=True),
        ev(EventKind.ROOM_FINISHED, 230),
    )
    assert view.phase is Phase.CLOSED
    assert (room.started_at, room.finished_at, view.agent_joined_at) == (100, 230, 104)


def test_agent_that_leaves_mid_meeting_is_lost_until_one_comes_back() -> None:
    J, L = EventKind.PARTICIPANT_JOINED, EventKind.PARTICIPANT_LEFT
    base = [ev(J, 1, "alice"), ev(J, 2, "agent-1", agent=True), ev(L, 50, "agent-1", agent=True)]
    _, lost = run(*base)
    assert (lost.phase, lost.waiting_since) == (Phase.AGENT_LOST, 50)
    assert run(*base, ev(J, 55, "bob"))[1].phase is Phase.AGENT_LOST  # people coming and going: still lost
    assert run(*base, ev(J, 65, "agent-AJ_2", agent=True))[1].phase is Phase.AGENT_PRESENT
    assert run(*base, ev(L, 60, "alice"))[1].phase is Phase.IDLE  # nobody left to serve


def test_agent_leaving_after_everyone_else_leaves_the_room_idle() -> None:
    J, L = EventKind.PARTICIPANT_JOINED, EventKind.PARTICIPANT_LEFT
    _, view = run(
        ev(J, 1, "alice"),
        ev(J, 2, "agent-1", agent=True),
        ev(L, 9, "alice"),
        ev(L, 10, "agent-1", agent=True),
    )
    assert view.phase is Phase.IDLE


def test_only_the_configured_agent_counts_but_an_unnamed_agent_is_not_double_booked() -> None:
    J = EventKind.PARTICIPANT_JOINED
    other, view = run(ev(J, 1, "alice"), ev(J, 2, "greeter", agent=True, name="greeter"))
    assert view.phase is Phase.WAITING
    assert [a.name for a in other.agents] == ["greeter"]
    _, unnamed = run(ev(J, 1, "alice"), ev(J, 2, "agent-x", agent=True, name=""))
    assert unnamed.phase is Phase.AGENT_PRESENT
    greeter = ev(J, 2, "greeter", agent=True, name="greeter")
    _, anyone = run(ev(J, 1, "alice"), greeter, room=ANY_AGENT, rules=NO_AGENT_CONFIGURED)
    assert anyone.phase is Phase.AGENT_PRESENT


def test_egress_recorder_is_not_a_person_but_a_phone_caller_is() -> None:
    J = EventKind.PARTICIPANT_JOINED
    assert run(ev(J, 1, "EG_rec", kind_of=ParticipantKind.EGRESS))[1].phase is Phase.IDLE
    assert run(ev(J, 1, "sip-caller", kind_of=ParticipantKind.SIP))[1].phase is Phase.WAITING


def test_identity_takeover_keeps_the_newer_session() -> None:
    J, L = EventKind.PARTICIPANT_JOINED, EventKind.PARTICIPANT_LEFT
    room, view = run(
        ev(J, 1, "alice", sid="PA_old"), ev(J, 5, "alice", sid="PA_new"), ev(L, 5, "alice", sid="PA_old")
    )
    assert [(p.identity, p.sid) for p in room.people] == [("alice", "PA_new")]
    assert view.phase is Phase.WAITING


def test_duplicate_events_change_nothing() -> None:
    J, T = EventKind.PARTICIPANT_JOINED, EventKind.TRACK_PUBLISHED
    events = [ev(J, 1, "alice"), ev(J, 2, "agent-1", agent=True), ev(T, 3, "agent-1")]
    once = run(*events)
    twice = run(*events, *events)
    assert twice == once


def test_left_delivered_before_its_join_still_wins_once_ordered() -> None:
    J, L = EventKind.PARTICIPANT_JOINED, EventKind.PARTICIPANT_LEFT
    joined, left = ev(J, 10, "alice"), ev(L, 11, "alice")  # an earlier second: LiveKit's order decides
    room = fold(Room("RM_1", "call-42"), [(left, 12.0), (joined, 13.0)], rules=RULES)
    assert room.views[0].phase is Phase.IDLE and room.people == ()


def test_wardens_own_events_sit_after_what_they_were_decided_on_and_make_no_webhook_late() -> None:
    """Warden's own events take the second of the newest webhook before them, not their wall clock's:
    a re-dispatch (decided at 12.9 s) stays before the agent's join that it brought (LiveKit's second
    12), and joins of an earlier second that arrive after Warden's own event are not late."""
    J = EventKind.PARTICIPANT_JOINED
    alice = ev(J, 10, "alice")
    dispatched = internal(EventKind.AGENT_DISPATCHED, "dispatched:1", "RM_1", "call-42", Fact(1, 12.9))
    agent, bob = ev(J, 12, "agent-1", agent=True), ev(J, 11, "bob")
    arrival = [(alice, 10.1), (dispatched, 12.9), (agent, 13.0)]
    assert [e for e, _ in placed(arrival)] == [alice, dispatched, agent]
    heard = internal(EventKind.HEARTBEAT, "heartbeat:1", "RM_1", "call-42", Fact(at=30.0))
    assert [e for e, _ in placed([(alice, 10.1), (heard, 30.0), (bob, 30.1)])] == [alice, heard, bob]
    assert second_of(heard, newest_after(-1, alice)) == 10 and is_webhook(bob) and not is_webhook(heard)


def test_every_kind_is_placed_either_as_livekits_or_as_wardens_own() -> None:
    """A new kind must say whose it is: a webhook's has a place in a life (`LIFECYCLE_RANK`), one of
    Warden's own is in `INTERNAL_KINDS` (placed after what it was decided on, never late)."""
    assert set(LIFECYCLE_RANK) | INTERNAL_KINDS == set(EventKind)
    assert not set(LIFECYCLE_RANK) & INTERNAL_KINDS


def test_failed_agent_job_removes_its_agent() -> None:
    J = EventKind.PARTICIPANT_JOINED
    ended = ev(EventKind.AGENT_JOB_ENDED, 30, job=Job("AJ_1", "notetaker", "AD_1", 3, "agent-1", "crashed"))
    room, view = run(ev(J, 1, "alice"), ev(J, 2, "agent-1", agent=True), ended)
    assert (view.phase, room.agents) == (Phase.AGENT_LOST, ())


KINDS = [
    EventKind.PARTICIPANT_JOINED,
    EventKind.PARTICIPANT_LEFT,
    EventKind.PARTICIPANT_CONNECTION_ABORTED,
    EventKind.TRACK_PUBLISHED,
    EventKind.TRACK_UNPUBLISHED,
    EventKind.ROOM_STARTED,
    EventKind.ROOM_FINISHED,
    EventKind.AGENT_JOB_ENDED,
    EventKind.OTHER,
]
event_strategy = st.builds(
    lambda kind, at, who, is_agent, session: ev(
        kind,
        at,
        who,
        agent=is_agent,
        sid=f"PA_{who}_{session}",
        job=Job("AJ", "notetaker", "AD", 3, who) if kind is EventKind.AGENT_JOB_ENDED else None,
    ),
    st.sampled_from(KINDS),
    st.integers(0, 20),
    st.sampled_from(["alice", "bob", "agent-1"]),
    st.booleans(),
    st.integers(0, 2),
)


def deliver(arrival: list[tuple[Event, float]]) -> Room:
    """What the store does: apply in place while events come in order, re-fold the log when one is late."""
    room, log, newest = Room("RM_1", "call-42"), [], -1
    for event, received_at in arrival:
        log.append((event, received_at))
        if not is_webhook(event) or event.created_at >= newest:
            room, newest = (
                transition(room, event, now=received_at, rules=RULES).room,
                newest_after(newest, event),
            )
        else:
            room = fold(Room("RM_1", "call-42"), log, rules=RULES)
    return room


@settings(max_examples=300, deadline=None)
@given(st.lists(event_strategy, max_size=25), st.randoms())
def test_any_delivery_order_gives_the_fold_in_livekit_order_and_phase_matches_presence(
    events: list[Event], rnd: random.Random
) -> None:
    rnd.shuffle(events)
    arrival = [(e, float(i)) for i, e in enumerate(events)]
    room = deliver(arrival)
    assert room == fold(Room("RM_1", "call-42"), arrival, rules=RULES)

    ours, view = room.our_agents(POLICY), room.view_for(POLICY.agent_name)
    if room.finished_at is not None:
        assert view.phase is Phase.CLOSED and not room.people and not room.agents
    elif ours:
        assert view.phase in (Phase.AGENT_PRESENT, Phase.AGENT_ACTIVE)
    elif room.people:
        assert view.phase in (Phase.WAITING, Phase.AGENT_LOST)
        assert view.waiting_since is not None
    else:
        assert view.phase is Phase.IDLE
    assert len({p.identity for p in room.people}) == len(room.people)


any_kind = st.sampled_from(list(EventKind))
facts = st.builds(
    lambda attempt, at, exists, who: Fact(
        attempt=attempt,
        at=float(at),
        room_exists=exists,
        participants=tuple(
            Participant(w, f"PA_{w}", int(ParticipantKind.AGENT if w.startswith("agent") else 0), "notetaker")
            for w in who
        ),
    ),
    st.integers(0, 4),
    st.integers(0, 60),
    st.booleans(),
    st.lists(st.sampled_from(["alice", "agent-1"]), max_size=2, unique=True),
)
any_event = st.builds(
    lambda kind, at, who, fact: Event(
        f"EV_{next(_counter)}",
        kind,
        str(kind),
        at,
        "RM_1",
        "call-42",
        Participant(
            who, f"PA_{who}", int(ParticipantKind.AGENT) if who.startswith("agent") else 0, "notetaker"
        ),
        "",
        Job("AJ", "notetaker", "AD", 3, who),
        fact,
    ),
    any_kind,
    st.integers(0, 60),
    st.sampled_from(["alice", "bob", "agent-1", "agent-2"]),
    st.one_of(st.none(), facts),
)


@settings(max_examples=500, deadline=None)
@given(
    st.lists(any_event, max_size=30),
    st.sampled_from([Policy("notetaker"), Policy("notetaker", active_sla=5.0)]),
)
def test_the_machine_never_raises_and_its_actions_are_well_formed(
    events: list[Event], policy: Policy
) -> None:
    room, rules = Room("RM_1", "call-42"), Rules.of((), policy)
    numbered: dict[int, ScheduleDeadline] = {}
    for event in events:
        decision = transition(room, event, now=float(event.created_at), rules=rules)
        room = decision.room
        view = room.views[0]
        assert view.phase in Phase
        for action in decision.actions:
            assert action in pending_actions(view) or not isinstance(action, ScheduleDeadline)
            if isinstance(action, ScheduleDeadline):  # a number names one deadline, ever
                assert numbered.setdefault(action.attempt, action) == action
        if view.deadline is not None:
            assert view.deadline.attempt == room.attempt
        if view.phase in (Phase.WAITING, Phase.AGENT_LOST) and view.recovery is Recovery.NONE:
            assert view.deadline is not None  # people wait, the agent is absent: something is scheduled

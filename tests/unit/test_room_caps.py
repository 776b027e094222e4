"""A room lists at most `Policy.people_listed` people by identity and counts the rest (issue 24): the
count goes up and down with joins and leaves of people not listed, a listing from LiveKit counts
afresh, agents are always listed, and the phases read the count as people being there."""

from __future__ import annotations

import itertools

from workers.core.events import Event, EventKind, Fact, Participant, ParticipantKind, internal
from workers.core.machine import changes, fold, transition
from workers.core.room import Phase, Policy, Room
from workers.core.rules import Rules

RULES = Rules.of((), Policy("notetaker", people_listed=3))
_ids = itertools.count()


def member(kind: EventKind, who: str, at: int = 10, *, agent: bool = False) -> tuple[Event, float]:
    k = ParticipantKind.AGENT if agent else ParticipantKind.STANDARD
    participant = Participant(who, f"PA_{who}", int(k), "notetaker" if agent else "")
    event = Event(f"EV_{next(_ids)}", kind, str(kind), at, "RM_1", "call-42", participant)
    return event, float(at)


J, L = EventKind.PARTICIPANT_JOINED, EventKind.PARTICIPANT_LEFT


def room_after(*events: tuple[Event, float]) -> Room:
    return fold(Room("RM_1", "call-42"), events, rules=RULES)


def test_people_beyond_the_list_are_counted_and_leaves_of_them_take_one_off() -> None:
    joins = [member(J, f"p{i}") for i in range(10)]
    room = room_after(*joins)
    assert [p.identity for p in room.people] == ["p0", "p1", "p2"] and room.people_unlisted == 7
    room = room_after(*joins, member(L, "p7"), member(L, "p8"), member(L, "p0"))
    assert [p.identity for p in room.people] == ["p1", "p2"] and room.people_unlisted == 5
    assert room.views[0].phase is Phase.WAITING


def test_a_room_with_only_counted_people_left_is_still_waiting_and_empties_at_the_last_leave() -> None:
    joins = [member(J, f"p{i}") for i in range(5)]
    listed_leave = [member(L, f"p{i}") for i in range(3)]
    room = room_after(*joins, *listed_leave)
    assert (room.people, room.people_unlisted, room.views[0].phase) == ((), 2, Phase.WAITING)
    room = room_after(*joins, *listed_leave, member(L, "p3"), member(L, "p4"))
    assert (room.people_unlisted, room.views[0].phase) == (0, Phase.IDLE)


def test_agents_are_never_capped_away() -> None:
    room = room_after(*(member(J, f"p{i}") for i in range(6)), member(J, "agent-1", agent=True))
    assert [a.identity for a in room.agents] == ["agent-1"] and room.views[0].phase is Phase.AGENT_PRESENT


def test_a_listing_counts_afresh() -> None:
    listed = tuple(Participant(f"q{i}", f"PA_q{i}", int(ParticipantKind.STANDARD)) for i in range(5))
    reconciled = internal(
        EventKind.RECONCILED, "reconciled:1", "RM_1", "call-42", Fact(at=100.0, participants=listed)
    )
    room = room_after(*(member(J, f"p{i}") for i in range(9)), (reconciled, 100.0))
    assert [p.identity for p in room.people] == ["q0", "q1", "q2"] and room.people_unlisted == 2


def test_a_finished_room_counts_nobody() -> None:
    finished = Event("EV_end", EventKind.ROOM_FINISHED, "room_finished", 20, "RM_1", "call-42")
    room = room_after(*(member(J, f"p{i}") for i in range(9)), (finished, 20.0))
    assert (room.people, room.people_unlisted) == ((), 0)


def test_a_listing_of_the_same_people_in_another_order_keeps_the_list_and_is_no_news() -> None:
    """livekit-server lists a room's participants in no set order: a reconciliation that finds the same
    people keeps the ones listed (the dashboard's names do not churn) and is not recorded as news."""
    room = room_after(*(member(J, f"p{i}") for i in range(6)), member(J, "agent-1", agent=True))
    everyone = [Participant(f"p{i}", f"PA_p{i}", int(ParticipantKind.STANDARD)) for i in (5, 4, 3, 2, 1, 0)]
    everyone.append(Participant("agent-1", "PA_agent-1", int(ParticipantKind.AGENT), "notetaker"))
    fact = Fact(at=100.0, participants=tuple(everyone))
    reconciled = internal(EventKind.RECONCILED, "reconciled:2", "RM_1", "call-42", fact)
    assert not changes(room, reconciled, now=100.0, rules=RULES)
    after = transition(room, reconciled, now=100.0, rules=RULES).room
    assert [p.identity for p in after.people] == ["p0", "p1", "p2"] and after.people_unlisted == 3

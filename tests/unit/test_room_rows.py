"""A room as its row stores it (`workers.core.stored`): this version's JSON comes back as it went in, and
rows the two versions before wrote still load with their meaning — who is there, each expected agent's
part, the deadline numbers — so that timers queued before an upgrade (`deadline:{sid}:{n}`) still find
the agent they were set for."""

from __future__ import annotations

import json
from typing import Any

from workers.core.events import DispatchInfo, EventKind, Fact, Participant, ParticipantKind, internal
from workers.core.machine import transition
from workers.core.room import (
    Agent,
    AgentView,
    CheckPresence,
    Deadline,
    Person,
    Phase,
    Policy,
    Reason,
    Recovery,
    Redispatch,
    Room,
)
from workers.core.rules import Rules
from workers.core.stored import from_dict, to_dict

ZERO = Rules.of((), Policy())
ALICE = Person("alice", "PA_alice", 100.0)
ASSISTANT = Agent("agent-AJ_1", "PA_agent-AJ_1", "assistant", 103.0)

# Before views existed: one room, watched for `WARDEN_AGENT_NAME` (or any agent), its deadline 1 set.
SINGLE: dict[str, Any] = json.loads(
    '{"sid": "RM_1", "name": "support-7", "phase": "waiting", "people": [{"identity": "alice", "sid": '
    '"PA_alice", "joined_at": 100.0}], "agents": [], "started_at": null, "finished_at": null, '
    '"first_person_at": 100.0, "agent_joined_at": null, "waiting_since": 100.0, "updated_at": 100.0, '
    '"deadline": {"attempt": 1, "at": 115.0, "reason": "join"}, "attempt": 1, "recovery": "none", '
    '"redispatches": 0, "stale_dispatches": [], "dispatch_metadata": "", "dispatch_id": "", "evict": "", '
    '"error": "", "dispatched_on_start": false}'
)


def _whole(agent: str, phase: str, **part: Any) -> dict[str, Any]:
    """A whole room as one agent saw it, as the previous version stored its base and each view."""
    return {
        "sid": "RM_1",
        "name": "support-7",
        "people": [{"identity": "alice", "sid": "PA_alice", "joined_at": 100.0}],
        "agents": [
            {"identity": "agent-AJ_1", "sid": "PA_agent-AJ_1", "name": "assistant", "joined_at": 103.0}
        ],
        "started_at": None,
        "finished_at": None,
        "first_person_at": 100.0,
        "updated_at": 115.2,
        "stale_dispatches": [],
        "dispatch_metadata": "",
        "dispatch_id": "",
        "evict": "",
        "error": "",
        "dispatched_on_start": False,
        "sources": ["dispatch"] if agent else [],
        "dispatch_attributes": [],
        "sip": False,
        "agent": agent,
        "phase": phase,
        "agent_joined_at": None,
        "waiting_since": None,
        "deadline": None,
        "attempt": 0,
        "recovery": "none",
        "redispatches": 0,
        **part,
    }


# The previous version: the room's base beside a view per expected agent (zero configuration: the
# agents learned from LiveKit's dispatches; the notetaker's check under way, deadline 2).
VIEWS: dict[str, Any] = {
    **_whole("", "waiting", waiting_since=100.0, attempt=2),
    "views": [
        _whole("assistant", "agent_present", agent_joined_at=103.0, attempt=1),
        _whole(
            "notetaker",
            "waiting",
            waiting_since=100.0,
            deadline={"attempt": 2, "at": 115.0, "reason": "join"},
            attempt=2,
            recovery="checking",
        ),
    ],
    "learned": True,
}


def _answer(attempt: int, *dispatches: DispatchInfo) -> Any:
    listed = (
        Participant("alice", "PA_alice", int(ParticipantKind.STANDARD)),
        Participant("agent-AJ_1", "PA_agent-AJ_1", int(ParticipantKind.AGENT), "assistant"),
    )
    fact = Fact(attempt, 115.3, True, listed, dispatches)
    return internal(
        EventKind.PRESENCE_OBSERVED, f"presence_observed:RM_1:{attempt}", "RM_1", "support-7", fact
    )


def test_a_room_comes_back_as_it_went_in() -> None:
    watching = Room("RM_1", "call", people=(ALICE,), watch=AgentView(phase=Phase.WAITING, waiting_since=1.0))
    learned = Room(
        "RM_1",
        "call",
        people=(ALICE,),
        agents=(ASSISTANT,),
        sip=True,
        attempt=3,
        watch=None,
        views=(
            AgentView("assistant", ("rule",), Phase.AGENT_PRESENT, agent_joined_at=103.0),
            AgentView(
                "notetaker",
                ("dispatch", "job"),
                Phase.WAITING,
                waiting_since=100.0,
                deadline=Deadline(3, 130.0, Reason.CONFIRM),
                recovery=Recovery.REDISPATCHING,
                redispatches=1,
                stale_dispatches=("AD_2",),
                dispatch_attributes=(("team", "sales"),),
            ),
        ),
    )
    for room in (Room("RM_1", "call"), watching, learned):
        assert from_dict(json.loads(json.dumps(to_dict(room)))) == room


def test_a_row_from_before_views_is_the_setting_agents_part_and_its_queued_timer_still_fires() -> None:
    room = from_dict(SINGLE, legacy_agent="notetaker")
    assert (room.learned, room.people, room.attempt) == (True, (ALICE,), 1)
    (view,) = room.views
    assert (view.agent, view.sources, view.phase, view.waiting_since) == (
        "notetaker",
        ("setting",),
        Phase.WAITING,
        100.0,
    )
    assert room.for_attempt(1) == view  # the timer queued as deadline:RM_1:1
    fired = internal(EventKind.DEADLINE_PASSED, "deadline_passed:RM_1:1", "RM_1", "support-7", Fact(1, 115.0))
    rules = Rules.of((), Policy("notetaker"))
    assert transition(room, fired, now=115.0, rules=rules).actions == (CheckPresence(1, "notetaker"),)


def test_a_row_from_before_views_with_no_agent_configured_is_the_rooms_own_watch() -> None:
    room = from_dict(SINGLE)
    assert (room.learned, room.views, room.people) == (False, (), (ALICE,))
    assert room.watch is not None and room.watch.deadline == Deadline(1, 115.0, Reason.JOIN)
    fired = internal(EventKind.DEADLINE_PASSED, "deadline_passed:RM_1:1", "RM_1", "support-7", Fact(1, 115.0))
    assert transition(room, fired, now=115.0, rules=ZERO).actions == (CheckPresence(1, ""),)


def test_a_row_with_views_keeps_each_agents_part_and_the_rooms_presence() -> None:
    room = from_dict(VIEWS)
    assert (room.learned, room.watch, room.attempt) == (True, None, 2)
    assert (room.people, room.agents, room.first_person_at) == ((ALICE,), (ASSISTANT,), 100.0)
    assistant, notetaker = room.views
    assert (assistant.agent, assistant.phase, assistant.agent_joined_at) == (
        "assistant",
        Phase.AGENT_PRESENT,
        103.0,
    )
    assert (notetaker.agent, notetaker.recovery) == ("notetaker", Recovery.CHECKING)
    assert room.for_attempt(2) == notetaker
    answered = transition(
        room,
        _answer(
            2,
            DispatchInfo("AD_1", "assistant", "{}", 100.0),
            DispatchInfo("AD_2", "notetaker", '{"doc":"42"}'),
        ),
        now=115.3,
        rules=ZERO,
    )
    assert [a for a in answered.actions if isinstance(a, Redispatch)] == [
        Redispatch(2, "notetaker", '{"doc":"42"}', ("AD_2",))
    ]


def test_a_row_with_views_still_watching_keeps_the_base_as_the_rooms_watch() -> None:
    watching = {**_whole("", "waiting", waiting_since=100.0, attempt=1), "views": [], "learned": False}
    watching["deadline"] = {"attempt": 1, "at": 115.0, "reason": "join"}
    room = from_dict(watching)
    assert room.watch is not None and room.watch.deadline == Deadline(1, 115.0, Reason.JOIN)
    assert (room.learned, room.views, room.for_attempt(1)) == (False, (), room.watch)

"""Protecting the person while an agent cannot be brought back (issue 27), through the pure machine:
when a fallback agent is dispatched, a caller transferred, the room told — and when not."""

from __future__ import annotations

import json
from dataclasses import replace

from workers.core.events import Event, EventKind, Fact, Job, Participant, ParticipantKind, internal
from workers.core.machine import transition
from workers.core.protecting import DispatchFallback, Protection, RemoveFallback, SendStatus, TransferCaller
from workers.core.room import Action, CheckPresence, Policy, Room, ScheduleDeadline
from workers.core.rules import Rule, Rules
from workers.jobs.rooms.protect import fallback_metadata

AGENT = "notetaker"
WEB = Policy(AGENT, max_redispatches=0, fallback_agent="apology")
ALICE = Participant("alice", "PA_alice", int(ParticipantKind.STANDARD), "", 100.0)
CALLER = Participant("sip_•••0100", "PA_caller", int(ParticipantKind.SIP), "", 100.0)
PROTECTING = (DispatchFallback, TransferCaller, RemoveFallback, SendStatus)


class Room_:
    """A room lived through step by step; every action decided is kept."""

    def __init__(self, policy: Policy, rules: tuple[Rule, ...] = ()) -> None:
        self.rules = Rules.of(rules, policy)
        self.room = Room("RM_1", "call-42")
        self.actions: list[Action] = []
        self.deadline: ScheduleDeadline | None = None
        self._n = 0

    def _apply(self, event: Event) -> None:
        decision = transition(self.room, event, now=event.at, rules=self.rules)
        self.room = decision.room
        self.actions += decision.actions
        for action in decision.actions:
            if isinstance(action, ScheduleDeadline):
                self.deadline = action

    def webhook(self, kind: EventKind, at: int, who: Participant, *, job: Job | None = None) -> None:
        self._n += 1
        event = Event(f"EV_{self._n}", kind, str(kind), at, "RM_1", "call-42", who, "", job)
        self._apply(event)

    def join(self, at: int, who: Participant = ALICE) -> None:
        self.webhook(EventKind.PARTICIPANT_JOINED, at, replace(who, joined_at=float(at)))

    def leave(self, at: int, who: Participant = ALICE) -> None:
        self.webhook(EventKind.PARTICIPANT_LEFT, at, who)

    def agent_joins(self, at: int, name: str = AGENT) -> None:
        self.join(at, Participant(f"agent-{name}", f"PA_{name}", int(ParticipantKind.AGENT), name))

    def deadline_passes(self) -> None:
        assert self.deadline is not None
        deadline, self.deadline = self.deadline, None
        fact = Fact(deadline.attempt, deadline.at, agent=AGENT)
        self._apply(internal(EventKind.DEADLINE_PASSED, f"d{deadline.attempt}", "RM_1", "call-42", fact))

    def livekit_answers(self, at: float, *here: Participant) -> None:
        check = next(a for a in reversed(self.actions) if isinstance(a, CheckPresence))
        fact = Fact(check.attempt, at, True, here, (), agent=AGENT)
        self._apply(internal(EventKind.PRESENCE_OBSERVED, f"p{check.attempt}", "RM_1", "call-42", fact))

    def dispatched(self, at: float) -> None:
        """LiveKit took Warden's re-dispatch."""
        attempt = self.room.views[0].deadline.attempt  # type: ignore[union-attr]
        fact = Fact(attempt, at, dispatch_id="AD_1", agent=AGENT)
        self._apply(internal(EventKind.AGENT_DISPATCHED, f"a{attempt}", "RM_1", "call-42", fact))

    def restarted(self, at: float) -> None:
        """The agent's incident restarted its deployment (the incident is open)."""
        fact = Fact(at=at, agent=AGENT)
        self._apply(internal(EventKind.AGENT_RESTARTED, f"r{at}", "RM_1", "call-42", fact))

    def fails(self, at: int = 100, who: Participant = ALICE) -> None:
        """People wait; the agent never comes; no re-dispatch left: its part fails."""
        self.join(at, who)
        self.deadline_passes()
        self.livekit_answers(at + 16.0, who)

    @property
    def protecting(self) -> list[Action]:
        return [a for a in self.actions if isinstance(a, PROTECTING)]


def test_a_web_room_whose_agent_failed_gets_the_fallback_agent_once() -> None:
    room = Room_(WEB)
    room.fails()
    assert room.protecting == [DispatchFallback(AGENT, "apology", "failed")]
    assert json.loads(fallback_metadata(AGENT, "failed")) == {
        "warden_fallback_for": AGENT,
        "reason": "failed",
    }
    room.agent_joins(130, "apology")  # the fallback agent is not the room's agent: still waiting
    room.join(131, replace(ALICE, identity="bob", sid="PA_bob"))
    assert room.protecting == [DispatchFallback(AGENT, "apology", "failed")]
    assert room.room.views[0].fallback is Protection.FALLBACK_AGENT


def test_the_fallback_agent_is_removed_when_the_agent_comes_after_all_unless_it_stays() -> None:
    room = Room_(WEB)
    room.fails()
    room.agent_joins(140)
    assert room.protecting[-1] == RemoveFallback(AGENT, "apology")
    staying = Room_(replace(WEB, fallback_stays=True))
    staying.fails()
    staying.agent_joins(140)
    assert staying.protecting == [DispatchFallback(AGENT, "apology", "failed")]


def test_a_sip_caller_is_transferred_rather_than_given_the_fallback_agent() -> None:
    room = Room_(replace(WEB, fallback_transfer_to="tel:+15550100"))
    room.fails(who=CALLER)
    assert room.protecting == [TransferCaller(AGENT, "failed")]
    assert "15550100" not in repr(room.actions) + repr(room.room)
    web = Room_(replace(WEB, fallback_transfer_to="tel:+15550100"))
    web.fails()  # not a phone call: the fallback agent
    assert web.protecting == [DispatchFallback(AGENT, "apology", "failed")]


def test_an_agent_that_arrives_in_time_brings_nothing() -> None:
    room = Room_(replace(WEB, notify_room=True, fallback_transfer_to="tel:+15550100"))
    room.join(100, CALLER)
    room.agent_joins(110)
    room.leave(200, CALLER)
    assert room.protecting == []


def test_a_room_the_person_already_left_gets_nothing() -> None:
    room = Room_(replace(WEB, notify_room=True))
    room.join(100)
    room.deadline_passes()
    room.leave(116)
    room.livekit_answers(117.0)  # nobody there
    assert [a for a in room.protecting if not isinstance(a, SendStatus)] == []
    assert room.room.views[0].fallback is Protection.NONE


def test_nothing_without_a_fallback_configured() -> None:
    room = Room_(Policy(AGENT, max_redispatches=0))
    room.fails()
    assert room.protecting == []


def test_waiting_with_its_incident_open_brings_the_fallback_after_twice_the_join_sla() -> None:
    room = Room_(replace(WEB, max_redispatches=5))
    room.join(100)
    room.restarted(110.0)  # the incident restarted the deployment: a check 20 s later
    assert room.protecting == []  # 10 s of waiting: not yet
    room.deadline_passes()  # at 130: 30 s of waiting, twice the join SLA of 15
    assert room.protecting == [DispatchFallback(AGENT, "apology", "outage")]


def test_fallback_after_seconds_from_the_rule() -> None:
    room = Room_(
        replace(WEB, max_redispatches=5), (Rule(1, room="call-*", agents=(AGENT,), fallback_after=60.0),)
    )
    room.join(100)
    room.restarted(110.0)
    room.deadline_passes()  # at 130: 30 s, the rule says 60
    assert room.protecting == []
    room.livekit_answers(170.0, ALICE)  # 70 s of waiting
    assert room.protecting == [DispatchFallback(AGENT, "apology", "outage")]


def test_no_incident_no_fallback_before_the_part_fails() -> None:
    room = Room_(replace(WEB, max_redispatches=5))
    room.join(100)
    room.deadline_passes()
    room.livekit_answers(200.0, ALICE)  # 100 s of waiting, but no incident known: re-dispatching
    assert room.protecting == []


def test_the_room_is_told_each_change_ending_restored() -> None:
    room = Room_(replace(WEB, notify_room=True, max_redispatches=1))
    room.join(100)
    room.deadline_passes()  # 115
    room.livekit_answers(116.0, ALICE)  # a re-dispatch
    room.dispatched(117.0)
    room.deadline_passes()  # the re-dispatch's confirm deadline
    room.livekit_answers(160.0, ALICE)  # it did not come either: failed
    room.agent_joins(170)
    told = [(a.state, a.since) for a in room.protecting if isinstance(a, SendStatus)]
    assert told == [("waiting", 115.0), ("recovering", 116.0), ("fallback", 160.0), ("restored", 170.0)]


def test_the_fallback_agent_is_never_expected_as_the_rooms_own() -> None:
    room = Room_(WEB)
    room.fails()
    job = Job("AJ_1", "apology", "AD_1")
    room.webhook(EventKind.AGENT_JOB_STARTED, 130, ALICE, job=job)
    assert [v.agent for v in room.room.views] == [AGENT]

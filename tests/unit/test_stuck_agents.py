"""The agent's own state (`lk.agent.state`) through the pure state machine: an agent stuck
`initializing` or `thinking` while people wait is removed and re-dispatched like a stalled one; healthy
states, and agents that never publish the attribute, are left alone."""

from __future__ import annotations

import pytest

from workers.core.events import DispatchInfo, Event, EventKind, Fact, Participant, ParticipantKind, internal
from workers.core.liveness import quiet_turns
from workers.core.machine import changes, transition
from workers.core.room import (
    Action,
    AgentView,
    CheckPresence,
    Evict,
    Policy,
    Reason,
    Recovery,
    Redispatch,
    ReportBreach,
    Room,
    ScheduleDeadline,
)
from workers.core.rules import Rule, Rules

RULES = Rules.of((), Policy("assistant"))
ALICE = Participant("alice", "PA_alice", int(ParticipantKind.STANDARD), joined_at=100.0)
DISPATCH = DispatchInfo("AD_1", "assistant", '{"lang": "fr"}', 95.0, (1,), agents=("agent-1",))


def agent(state: str = "", identity: str = "agent-1", publishing: bool = False) -> Participant:
    return Participant(
        identity,
        f"PA_{identity}",
        int(ParticipantKind.AGENT),
        "assistant",
        101.0,
        publishing=publishing,
        state=state,
    )


def joined(who: Participant, at: int) -> Event:
    return Event(
        f"EV_{who.identity}_{at}",
        EventKind.PARTICIPANT_JOINED,
        "participant_joined",
        at,
        "RM_1",
        "call-1",
        who,
    )


def left(who: Participant, at: int) -> Event:
    return Event(
        f"EV_left_{who.identity}_{at}",
        EventKind.PARTICIPANT_LEFT,
        "participant_left",
        at,
        "RM_1",
        "call-1",
        who,
    )


def listing(at: float, *participants: Participant) -> Event:
    """A look at the room (the liveness cron's, or reconciliation's): who LiveKit lists."""
    fact = Fact(at=at, participants=participants, dispatches=(DISPATCH,))
    return internal(EventKind.RECONCILED, f"reconciled:{at}", "RM_1", "call-1", fact)


def own(kind: EventKind, attempt: int, at: float, *participants: Participant, **fact: object) -> Event:
    facts = Fact(attempt=attempt, at=at, participants=participants, dispatches=(DISPATCH,), **fact)  # type: ignore[arg-type]
    return internal(kind, f"{kind}:{attempt}:{at}", "RM_1", "call-1", facts)


class Life:
    """A room lived event by event, remembering every action asked for."""

    def __init__(self, rules: Rules = RULES) -> None:
        self.room, self.rules, self.actions = Room("RM_1", "call-1"), rules, []  # type: list[Action]

    def __call__(self, event: Event) -> tuple[Action, ...]:
        decision = transition(self.room, event, now=event.at, rules=self.rules)
        self.room = decision.room
        self.actions += decision.actions
        return decision.actions

    @property
    def part(self) -> AgentView:
        return self.room.views[0]


def with_agent(state: str, rules: Rules = RULES, publishing: bool = False) -> Life:
    """Alice, then the assistant, whom a look at 105 lists in `state`."""
    life = Life(rules)
    life(joined(ALICE, 100))
    life(joined(agent(), 101))
    life(listing(105.0, ALICE, agent(state, publishing=publishing)))
    return life


def test_an_agent_stuck_initializing_is_removed_and_redispatched_with_its_dispatch_metadata() -> None:
    life = with_agent("initializing")
    deadline = life.part.deadline
    assert deadline is not None and (deadline.reason, deadline.at) == (Reason.STUCK_INITIALIZING, 135.0)
    assert ScheduleDeadline(deadline.attempt, 135.0, Reason.STUCK_INITIALIZING, "assistant") in life.actions
    assert life(own(EventKind.DEADLINE_PASSED, deadline.attempt, 135.0)) == (
        CheckPresence(deadline.attempt, "assistant"),
    )
    answer = life(own(EventKind.PRESENCE_OBSERVED, deadline.attempt, 135.2, ALICE, agent("initializing")))
    assert Evict(deadline.attempt, "agent-1", "assistant") in answer
    assert ReportBreach("stuck_initializing", "assistant") in answer
    after = life(own(EventKind.AGENT_EVICTED, deadline.attempt, 135.4))
    assert after == (Redispatch(deadline.attempt, "assistant", '{"lang": "fr"}', ("AD_1",)),)


def test_an_agent_stuck_thinking_is_replaced_even_though_it_published_a_track_long_ago() -> None:
    life = with_agent("thinking", publishing=True)
    deadline = life.part.deadline
    assert deadline is not None and (deadline.reason, deadline.at) == (Reason.STUCK_THINKING, 165.0)
    life(own(EventKind.DEADLINE_PASSED, deadline.attempt, 165.0))
    answer = life(
        own(EventKind.PRESENCE_OBSERVED, deadline.attempt, 165.1, ALICE, agent("thinking", publishing=True))
    )
    assert Evict(deadline.attempt, "agent-1", "assistant") in answer
    assert life.part.recovery is Recovery.EVICTING
    assert ReportBreach("stuck_thinking", "assistant") in answer


def test_an_agent_that_moved_on_by_the_check_is_left_alone() -> None:
    life = with_agent("thinking", publishing=True)
    deadline = life.part.deadline
    assert deadline is not None
    life(own(EventKind.DEADLINE_PASSED, deadline.attempt, 165.0))
    answer = life(
        own(EventKind.PRESENCE_OBSERVED, deadline.attempt, 165.1, ALICE, agent("speaking", publishing=True))
    )
    assert not [a for a in answer if isinstance(a, Evict | Redispatch | ReportBreach)]
    assert (life.part.recovery, life.part.deadline) == (Recovery.NONE, None)


@pytest.mark.parametrize("state", ["listening", "idle", "speaking"])
def test_healthy_states_set_no_deadline_however_long_they_last(state: str) -> None:
    life = with_agent(state, publishing=True)
    life(listing(1000.0, ALICE, agent(state, publishing=True)))
    assert life.part.deadline is None
    watched = [a.reason for a in life.actions if isinstance(a, ScheduleDeadline)]
    assert watched == [Reason.JOIN]  # alice waited for the agent, then nothing more
    assert not [a for a in life.actions if isinstance(a, Evict | Redispatch)]


def test_an_agent_that_never_publishes_its_state_is_judged_as_before() -> None:
    life = with_agent("")
    life(listing(1000.0, ALICE, agent("")))
    assert life.part.deadline is None  # no active SLA: present is enough
    watched = with_agent("", Rules.of((), Policy("assistant", active_sla=20.0)))
    deadline = watched.part.deadline
    assert deadline is not None and (deadline.reason, deadline.at) == (Reason.ACTIVE, 121.0)


def test_the_earlier_of_the_active_and_stuck_deadlines_is_watched() -> None:
    life = with_agent("initializing", Rules.of((), Policy("assistant", active_sla=60.0)))
    deadline = life.part.deadline
    assert deadline is not None and (deadline.reason, deadline.at) == (Reason.STUCK_INITIALIZING, 135.0)
    life(listing(110.0, ALICE, agent("listening")))  # it started: the active SLA is watched again
    deadline = life.part.deadline
    assert deadline is not None and (deadline.reason, deadline.at) == (Reason.ACTIVE, 161.0)


def test_since_when_is_when_warden_first_saw_the_state_and_an_unchanged_look_is_no_news() -> None:
    life = with_agent("thinking")
    (here,) = life.room.agents
    assert (here.state, here.state_since) == ("thinking", 105.0)
    again = listing(120.0, ALICE, agent("thinking"))
    assert not changes(life.room, again, now=120.0, rules=RULES)
    life(again)
    assert life.room.agents[0].state_since == 105.0
    life(listing(130.0, ALICE, agent("listening")))
    life(listing(140.0, ALICE, agent("thinking")))
    (here,) = life.room.agents
    assert (here.state, here.state_since) == ("thinking", 140.0)
    deadline = life.part.deadline
    assert deadline is not None and (deadline.reason, deadline.at) == (Reason.STUCK_THINKING, 200.0)


def test_a_join_webhook_carrying_the_state_starts_its_clock() -> None:
    life = Life()
    life(joined(ALICE, 100))
    life(joined(agent("initializing"), 102))
    assert (life.room.agents[0].state, life.room.agents[0].state_since) == ("initializing", 102.0)
    deadline = life.part.deadline
    assert deadline is not None and (deadline.reason, deadline.at) == (Reason.STUCK_INITIALIZING, 132.0)


def test_an_agent_alone_in_the_room_may_stay_in_any_state() -> None:
    life = with_agent("thinking")
    assert life.part.deadline is not None
    life(left(ALICE, 110))
    assert life.part.deadline is None
    life = Life()
    life(joined(agent("initializing"), 101))
    assert life.part.deadline is None


def test_the_replacement_is_left_alone_with_a_clock_of_its_own() -> None:
    life = with_agent("initializing")
    first = life.part.deadline
    assert first is not None
    life(own(EventKind.DEADLINE_PASSED, first.attempt, 135.0))
    life(own(EventKind.PRESENCE_OBSERVED, first.attempt, 135.1, ALICE, agent("initializing")))
    life(own(EventKind.AGENT_EVICTED, first.attempt, 135.2))
    life(own(EventKind.AGENT_DISPATCHED, first.attempt, 135.3, dispatch_id="AD_2"))
    assert [a.identity for a in life.room.agents] == []
    life(joined(agent("", "agent-2"), 138))
    life(listing(140.0, ALICE, agent("initializing", "agent-2")))
    deadline = life.part.deadline
    assert deadline is not None and (deadline.reason, deadline.at) == (Reason.STUCK_INITIALIZING, 170.0)
    life(listing(150.0, ALICE, agent("listening", "agent-2")))
    assert life.part.deadline is None
    evicted = [a.identity for a in life.actions if isinstance(a, Evict)]
    assert evicted == ["agent-1"]


def test_rules_set_or_turn_off_each_state_limit() -> None:
    thinking_off = Rules.of(
        (Rule(1, room="call-*", agents=("assistant",), stuck_thinking=0.0, stuck_initializing=10.0),),
        Policy("assistant"),
    )
    assert with_agent("thinking", thinking_off).part.deadline is None
    deadline = with_agent("initializing", thinking_off).part.deadline
    assert deadline is not None and deadline.at == 115.0
    other_room = Rules.of(
        (Rule(1, room="support-*", agents=("assistant",), stuck_thinking=0.0),), Policy("assistant")
    )
    assert with_agent("thinking", other_room).part.deadline is not None


def test_a_stuck_deadline_is_replaced_by_a_join_deadline_when_the_agent_leaves() -> None:
    life = with_agent("initializing")
    life(left(agent(), 110))
    deadline = life.part.deadline
    assert deadline is not None and deadline.reason is Reason.REJOIN


@pytest.mark.parametrize(
    ("known", "listed", "news"),
    [
        ("listening", "speaking", False),  # a conversation's turn: no rule limits either state
        ("speaking", "idle", False),
        ("listening", "thinking", True),  # the stuck clock starts
        ("thinking", "speaking", True),  # and stops
        ("", "listening", True),  # its first state
    ],
)
def test_a_liveness_look_finds_news_only_in_a_turn_a_rule_cares_about(
    known: str, listed: str, news: bool
) -> None:
    life = with_agent(known)
    look = quiet_turns(life.room, (ALICE, agent(listed)))
    assert changes(life.room, listing(110.0, *look), now=110.0, rules=RULES) is news


def test_a_liveness_look_still_finds_someone_new_beside_a_quiet_turn() -> None:
    life = with_agent("listening")
    bob = Participant("bob", "PA_bob", int(ParticipantKind.STANDARD), joined_at=108.0)
    look = quiet_turns(life.room, (ALICE, bob, agent("speaking")))
    assert changes(life.room, listing(110.0, *look), now=110.0, rules=RULES)

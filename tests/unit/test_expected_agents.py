"""Every agent a room needs (`workers.core.agents`, moved by `workers.core.machine`): what Warden does for
each expected agent, learned from LiveKit's dispatches, job events and rules, told apart by name — pure,
step by step."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from workers.core.events import (
    DispatchInfo,
    Event,
    EventKind,
    Fact,
    Job,
    Participant,
    ParticipantKind,
    internal,
)
from workers.core.machine import transition
from workers.core.order import placed
from workers.core.recovery import LISTING_GRACE
from workers.core.room import (
    CheckPresence,
    Dispatch,
    Expect,
    Phase,
    Policy,
    Redispatch,
    Room,
    ScheduleDeadline,
)
from workers.core.rules import Rule, Rules

POLICY = Policy(join_sla=15.0, rejoin_sla=20.0, max_redispatches=2)
ZERO = Rules.of((), POLICY)
_ids = iter(range(1, 10**9))
J, L = EventKind.PARTICIPANT_JOINED, EventKind.PARTICIPANT_LEFT


def person(identity: str, kind: ParticipantKind = ParticipantKind.STANDARD) -> Participant:
    return Participant(identity, f"PA_{identity}", int(kind))


def agent(identity: str, name: str, on_behalf: str = "") -> Participant:
    return Participant(identity, f"PA_{identity}", int(ParticipantKind.AGENT), name, on_behalf=on_behalf)


def webhook(kind: EventKind, at: int, who: Participant | None = None, job: Job | None = None) -> Event:
    return Event(f"EV_{next(_ids)}", kind, str(kind), at, "RM_1", "support-7", who, job=job)


def own(kind: EventKind, fact: Fact) -> Event:
    return internal(kind, f"{kind}:RM_1:{fact.attempt}:{next(_ids)}", "RM_1", "support-7", fact)


class Room_:
    """A room driven through `machine.transition`, remembering every action decided."""

    def __init__(self, rules: Rules = ZERO) -> None:
        self.room, self.rules, self.actions = Room("RM_1", "support-7"), rules, []  # type: ignore[var-annotated]

    def __call__(self, event: Event, now: float | None = None) -> list[object]:
        decision = transition(self.room, event, now=now or event.at, rules=self.rules)
        self.room = decision.room
        self.actions += decision.actions
        return list(decision.actions)

    def due(self, agent_name: str) -> ScheduleDeadline:
        found = [a for a in self.actions if isinstance(a, ScheduleDeadline) and a.agent == agent_name]
        return found[-1]

    def answer(self, attempt: int, at: float, present: tuple[Participant, ...], *dispatches: DispatchInfo):
        return self(own(EventKind.PRESENCE_OBSERVED, Fact(attempt, at, True, present, dispatches)))

    def fire(self, deadline: ScheduleDeadline) -> list[object]:
        return self(own(EventKind.DEADLINE_PASSED, Fact(deadline.attempt, deadline.at)))


ALICE = person("alice")
ASSISTANT = agent("agent-AJ_1", "assistant")
D_ASSISTANT = DispatchInfo("AD_1", "assistant", metadata='{"lang":"fr"}', created_at=100)
D_NOTETAKER = DispatchInfo("AD_2", "notetaker", metadata='{"doc":"42"}', attributes=(("team", "sales"),))


def test_zero_config_learns_the_dispatches_and_redispatches_the_missing_agent_with_its_metadata() -> None:
    room = Room_()
    room(webhook(EventKind.ROOM_STARTED, 99))
    room(webhook(J, 100, ALICE))
    room(webhook(J, 103, ASSISTANT))
    first = room.due("")  # the room's own watch: at the first person's arrival + join_sla
    assert (first.at, first.agent) == (115, "")
    assert any(isinstance(a, CheckPresence) for a in room.fire(first))
    learned = room.answer(first.attempt, 115.1, (ALICE, ASSISTANT), D_ASSISTANT, D_NOTETAKER)
    assert [a for a in learned if isinstance(a, Expect)] == [
        Expect("assistant", "dispatch"),
        Expect("notetaker", "dispatch"),
    ]
    assert not any(isinstance(a, Redispatch) for a in learned)  # each view asks for itself first
    assistant, notetaker = room.room.view("assistant"), room.room.view("notetaker")
    assert assistant is not None and notetaker is not None
    assert (assistant.phase, assistant.deadline) == (Phase.AGENT_PRESENT, None)
    assert notetaker.phase is Phase.WAITING
    due = room.due("notetaker")
    assert due.at == 115 and due.attempt != first.attempt  # already past: fires at once
    room.fire(due)
    acted = room.answer(due.attempt, 115.3, (ALICE, ASSISTANT), D_ASSISTANT, D_NOTETAKER)
    assert [a for a in acted if isinstance(a, Redispatch)] == [
        Redispatch(due.attempt, "notetaker", '{"doc":"42"}', ("AD_2",), (("team", "sales"),))
    ]
    summary = room.room.summary()
    assert (summary.agent, str(summary.recovery)) == ("notetaker", "redispatching")


def test_a_room_that_expects_no_agent_is_left_alone() -> None:
    room = Room_()
    room(webhook(J, 100, ALICE))
    first = room.due("")
    room.fire(first)
    automatic = DispatchInfo("AD_9", "")  # the server's own empty-name dispatch says nothing
    after = room.answer(first.attempt, 115.2, (ALICE,), automatic)
    assert not [a for a in after if isinstance(a, Redispatch | Dispatch | ScheduleDeadline)]
    room(webhook(J, 130, person("bob")))
    room(webhook(L, 140, ALICE))
    assert room.room.views == () and room.room.learned
    assert room.room.next_deadline() is None
    # nobody waits (not counted as waiting), but people are there: not "idle", which means nobody in it
    assert room.room.summary().phase is Phase.NO_AGENT_EXPECTED
    assert not any(isinstance(a, Redispatch | Dispatch) for a in room.actions)
    room(webhook(L, 150, person("bob")))
    assert room.room.summary().phase is Phase.IDLE  # now nobody is in it


def reconciled(at: float, present: tuple[Participant, ...], *dispatches: DispatchInfo) -> Event:
    return own(EventKind.RECONCILED, Fact(0, at, True, present, dispatches))


def test_a_dispatch_listed_later_is_learned_with_its_sla_from_its_dispatch() -> None:
    room = Room_()
    room(webhook(J, 100, ALICE))
    room(webhook(J, 101, ASSISTANT))
    first = room.due("")
    room.fire(first)
    room.answer(first.attempt, 115.1, (ALICE, ASSISTANT), D_ASSISTANT)
    assert room.room.summary().phase is Phase.AGENT_PRESENT and room.room.view("notetaker") is None
    late = DispatchInfo("AD_7", "notetaker", created_at=700.25)  # the app adds a notetaker at 700 s
    learned = room(reconciled(730.0, (ALICE, ASSISTANT), D_ASSISTANT, late))
    assert Expect("notetaker", "dispatch") in learned
    due = room.due("notetaker")
    assert due.at == 715.25  # its SLA from its dispatch, not from alice's arrival (115): past, at once
    room.fire(due)
    acted = room.answer(due.attempt, 730.2, (ALICE, ASSISTANT), D_ASSISTANT, late)
    assert [a.agent for a in acted if isinstance(a, Redispatch)] == ["notetaker"]
    assert room.room.view("assistant").deadline is None  # type: ignore[union-attr]


def test_a_room_expecting_no_agent_learns_a_later_dispatch_from_a_listing() -> None:
    room = Room_()
    room(webhook(J, 100, ALICE))
    first = room.due("")
    room.fire(first)
    room.answer(first.attempt, 115.1, (ALICE,))
    assert room.room.summary().phase is Phase.NO_AGENT_EXPECTED
    assert room(reconciled(160.0, (ALICE,))) == []  # nothing dispatched yet: nothing to do
    room(reconciled(220.0, (ALICE,), DispatchInfo("AD_8", "notetaker", created_at=210.0)))
    assert room.room.summary().phase is Phase.WAITING and room.due("notetaker").at == 225.0


def test_unnamed_agents_count_where_a_rule_says_so() -> None:
    rules = Rules.of((Rule(1, room="support-*", unnamed_agents=True),), POLICY)
    room = Room_(rules)
    room(webhook(J, 100, ALICE))
    room.fire(room.due(""))
    room.answer(room.due("").attempt, 115.2, (ALICE,), DispatchInfo("AD_9", ""))
    assert [v.agent for v in room.room.views] == [""]


def test_a_rule_expects_two_agents_and_only_the_missing_one_is_redispatched() -> None:
    rules = Rules.of((Rule(1, room="support-*", agents=("assistant", "notetaker"), join_sla=10),), POLICY)
    room = Room_(rules)
    room(webhook(J, 100, ALICE))
    assert {(v.agent, v.sources) for v in room.room.views} == {
        ("assistant", ("rule",)),
        ("notetaker", ("rule",)),
    }
    room(webhook(J, 104, ASSISTANT))
    assert room.room.view("assistant").deadline is None  # type: ignore[union-attr]
    due = room.due("notetaker")
    assert due.at == 110  # the rule's join_sla
    room.fire(due)
    acted = room.answer(due.attempt, 110.2, (ALICE, ASSISTANT), D_ASSISTANT)
    assert [(a.agent_name, a.metadata) for a in acted if isinstance(a, Redispatch)] == [("notetaker", "")]
    assert room.room.view("assistant").phase is Phase.AGENT_PRESENT  # type: ignore[union-attr]


def test_a_job_event_makes_its_agent_expected() -> None:
    rules = Rules.of((Rule(1, room="support-*", agents=("assistant",)),), POLICY)
    room = Room_(rules)
    room(webhook(J, 100, ALICE))
    job = Job("AJ_7", agent_name="notetaker", dispatch_id="AD_2")
    acted = room(webhook(EventKind.AGENT_JOB_STARTED, 101, job=job))
    assert Expect("notetaker", "job") in acted
    assert room.due("notetaker").at == 115


def test_an_avatar_is_neither_an_agent_nor_a_person() -> None:
    rules = Rules.of((Rule(1, agents=("assistant",)),), POLICY)
    room = Room_(rules)
    room(webhook(J, 100, ALICE))
    room(webhook(J, 101, agent("avatar-1", "", on_behalf="agent-AJ_1")))
    view = room.room.view("assistant")
    assert view is not None and view.phase is Phase.WAITING and len(room.room.people) == 1
    room(webhook(L, 102, ALICE))
    assert room.room.view("assistant").phase is Phase.IDLE  # type: ignore[union-attr]


def test_a_sip_room_gets_its_own_sla_from_the_callers_arrival() -> None:
    rules = Rules.of(
        (Rule(1, sip=True, agents=("receptionist",), join_sla=3),),
        replace(POLICY, sla_from_room_start=True, agent_name="assistant"),
    )
    room = Room_(rules)
    room(webhook(EventKind.ROOM_STARTED, 90))
    room(webhook(J, 100, person("sip_•••0100", ParticipantKind.SIP)))
    assert [v.agent for v in room.room.views] == ["receptionist"]  # the SIP rule, not the setting's
    due = room.due("receptionist")
    assert due.at == 103  # from the caller's arrival, not the room's start


def test_warden_agent_name_alone_is_one_view_of_that_agent() -> None:
    rules = Rules.of((), replace(POLICY, agent_name="notetaker"))
    room = Room_(rules)
    room(webhook(J, 100, ALICE))
    assert [(v.agent, v.sources) for v in room.room.views] == [("notetaker", ("setting",))]
    assert [a.agent for a in room.actions if isinstance(a, ScheduleDeadline)] == ["notetaker"]


# --- WARDEN_AGENT_NAME alone behaves exactly as before views existed ----------------------------------

NAMES = ("alice", "bob", "agent-1", "agent-2")


@st.composite
def lives(draw: st.DrawFn) -> list[tuple[Event, float]]:
    events, at = [], 100
    for _ in range(draw(st.integers(1, 25))):
        at += draw(st.integers(0, 12))
        who = draw(st.sampled_from(NAMES))
        is_agent = who.startswith("agent")
        p = agent(who, "notetaker") if is_agent else person(who)
        kind = draw(
            st.sampled_from(
                [J, L, EventKind.TRACK_PUBLISHED, EventKind.DEADLINE_PASSED, EventKind.PRESENCE_OBSERVED]
            )
        )
        if kind in (EventKind.DEADLINE_PASSED, EventKind.PRESENCE_OBSERVED):
            fact = Fact(draw(st.integers(1, 4)), float(at), True, (p,) if draw(st.booleans()) else ())
            events.append((own(kind, fact), float(at)))
        elif kind is EventKind.TRACK_PUBLISHED:
            events.append((webhook(kind, at, Participant(who, f"PA_{who}")), float(at)))
        else:
            events.append((webhook(kind, at, p), float(at)))
    return events


@settings(max_examples=300, deadline=None)
@given(lives())
def test_a_single_agent_name_is_one_agent_watched_from_the_first_event_as_a_rule_would(
    events: list[tuple[Event, float]],
) -> None:
    """`WARDEN_AGENT_NAME` alone: from the room's first event, one part, of that agent, which is what
    the room's row shows; every step decides what a rule naming that agent decides, without the
    timeline's `Expect` line (the setting expects it in every room, as before views existed)."""
    setting = Rules.of((), replace(POLICY, agent_name="notetaker"))
    named = Rules.of((Rule(1, agents=("notetaker",)),), POLICY)
    alone, ruled = Room("RM_1", "support-7"), Room("RM_1", "support-7")
    for event, at in placed(events):
        by_setting = transition(alone, event, now=at, rules=setting)
        by_rule = transition(ruled, event, now=at, rules=named)
        alone, ruled = by_setting.room, by_rule.room
        (view,) = alone.views
        assert (view.agent, view.sources, alone.learned) == ("notetaker", ("setting",), True)
        assert alone.summary() == view
        assert replace(alone, views=(replace(view, sources=("rule",)),)) == ruled
        assert by_setting.actions == tuple(a for a in by_rule.actions if not isinstance(a, Expect))


def test_a_dispatch_made_just_before_the_deadline_is_given_its_time_not_replaced() -> None:
    """A dispatch made a moment before the check, still without a job or an agent, may be on its way
    (livekit-server assigned one 50 ms after Warden deleted it): re-dispatching would orphan its agent
    beside a new one. Warden looks again once it has had its time (`LISTING_GRACE`, 6 s: livekit-server
    lists a job up to 5 s after it assigned it)."""
    rules = Rules.of((Rule(1, agents=("assistant",)),), POLICY)
    room = Room_(rules)
    room(webhook(J, 100, ALICE))
    due = room.due("assistant")
    room.fire(due)
    fresh = DispatchInfo("AD_5", "assistant", created_at=114.2)
    acted = room.answer(due.attempt, 115.0, (ALICE,), fresh)
    assert not any(isinstance(a, Redispatch) for a in acted)
    again = room.due("assistant")
    assert again.at == 114.2 + LISTING_GRACE and again.attempt > due.attempt
    room.fire(again)
    acted = room.answer(again.attempt, 120.3, (ALICE,), fresh)  # still nobody, no job: now it is stale
    assert [a.stale for a in acted if isinstance(a, Redispatch)] == [("AD_5",)]


def test_attempts_only_go_up_even_when_a_view_goes() -> None:
    """A caller makes the SIP rule apply: the setting's agent is no longer expected, and the phone
    agent's first deadline must not reuse a number the dropped view's timers and answers already used
    (its job and events would be taken for duplicates, and it would never be re-dispatched)."""
    rules = Rules.of((Rule(1, sip=True, agents=("phone",)),), replace(POLICY, agent_name="assistant"))
    room = Room_(rules)
    room(webhook(J, 100, ALICE))
    first = room.due("assistant")
    room.fire(first)
    room.answer(first.attempt, 115.1, (ALICE,))
    room(own(EventKind.AGENT_DISPATCHED, Fact(first.attempt, 115.2, dispatch_id="AD_1")))
    used = {a.attempt for a in room.actions if isinstance(a, ScheduleDeadline | Redispatch)}
    room(webhook(J, 120, person("sip_•••0100", ParticipantKind.SIP)))
    assert [v.agent for v in room.room.views] == ["phone"]
    assert room.due("phone").attempt > max(used)


def test_warden_makes_the_first_dispatch_only_of_the_agents_it_is_told_of() -> None:
    """`WARDEN_DISPATCH_ON_START`: the agents a rule (or the setting) names get their first dispatch from
    Warden when people start waiting, once; an agent LiveKit already runs a job for was dispatched by
    someone else, and a second dispatch would book it twice."""
    rules = Rules.of(
        (Rule(1, room="support-*", agents=("assistant",)),), replace(POLICY, dispatch_on_start=True)
    )
    room = Room_(rules)
    room(
        webhook(EventKind.AGENT_JOB_STARTED, 99, job=Job("AJ_7", agent_name="notetaker", dispatch_id="AD_2"))
    )
    acted = room(webhook(J, 100, ALICE))
    assert [a for a in acted if isinstance(a, Dispatch)] == [Dispatch("assistant")]
    room(webhook(L, 110, ALICE))
    assert not any(isinstance(a, Dispatch) for a in room(webhook(J, 120, person("bob"))))


def test_an_answer_that_predates_a_join_undoes_it_for_no_agent() -> None:
    """LiveKit's listing is taken before it is recorded: the assistant joining (and starting to work)
    after the notetaker's check was listed, but before its answer is recorded, stays in the room, for
    every agent's part — the notetaker's answer must not make the assistant lost, nor forget that it
    works (it would never be active again: its track was published already)."""
    rules = Rules.of((Rule(1, room="support-*", agents=("assistant", "notetaker")),), POLICY)
    room = Room_(rules)
    room(webhook(J, 100, ALICE))
    due = room.due("notetaker")
    room.fire(due)
    room(webhook(J, 115, ASSISTANT))
    room(webhook(EventKind.TRACK_PUBLISHED, 115, Participant(ASSISTANT.identity, ASSISTANT.sid)))
    acted = room.answer(due.attempt, 115.2, (ALICE,))  # listed before the assistant came
    assert room.room.view("assistant").phase is Phase.AGENT_ACTIVE  # type: ignore[union-attr]
    assert [a.agent_name for a in acted if isinstance(a, Redispatch)] == ["notetaker"]

"""The whole (recovery state, trigger) table of the recovery sub-machine, walked pair by pair; how the
presence table hands over to it; and a gap in either table stopping the import."""

from __future__ import annotations

from itertools import product

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from workers.core.diagram_recovery import recovery_samples
from workers.core.diagram_samples import part
from workers.core.errors import UndeclaredTransition
from workers.core.events import Event, EventKind, Fact, Participant, ParticipantKind
from workers.core.machine import RECOVERY, TABLE, recover, settled, transition
from workers.core.recovery import Rule, Trigger
from workers.core.room import AgentView, Phase, Policy, Reason, Recovery, Room
from workers.core.rules import Rules
from workers.core.table import ignore, table

N, C, E, R, F = Recovery.NONE, Recovery.CHECKING, Recovery.EVICTING, Recovery.REDISPATCHING, Recovery.FAILED
POLICY = Policy("notetaker")
CASES = [(s, t, what) for s, t in product(Recovery, Trigger) for what in recovery_samples(s, t)]

# (state, trigger, what the sample says) -> (recovery state after, its deadline's reason), of the sample
# room's one expected agent. Written by hand from the rules in workers/core/machine.py. The sample rooms
# (workers/core/diagram.py) wait past a join deadline of attempt 1, but the evicting one, which holds a
# stalled agent under an active deadline, and the failed one, which has none. Anything not listed
# changes nothing.
NO_DEADLINE = None
CHANGED: dict[tuple[Recovery, Trigger, str], tuple[Recovery, Reason | None]] = {
    (N, Trigger.DEADLINE_PASSED, ""): (C, Reason.JOIN),
    (C, Trigger.PRESENCE_OBSERVED, "agent there"): (N, NO_DEADLINE),
    (C, Trigger.PRESENCE_OBSERVED, "agent stalled"): (E, Reason.ACTIVE),
    (C, Trigger.PRESENCE_OBSERVED, "agent stuck"): (E, Reason.STUCK_INITIALIZING),
    (C, Trigger.PRESENCE_OBSERVED, "two copies"): (E, Reason.DUPLICATE),
    (C, Trigger.PRESENCE_OBSERVED, "no agent"): (R, Reason.JOIN),
    (C, Trigger.PRESENCE_OBSERVED, "re-dispatches used up"): (F, NO_DEADLINE),
    # LiveKit's job signals: a job called off is no failure (looked at again later); full workers are
    # re-dispatched to past the limit (a restart adds no capacity)
    (C, Trigger.PRESENCE_OBSERVED, "job cancelled"): (N, Reason.JOIN),
    (C, Trigger.PRESENCE_OBSERVED, "workers full"): (R, Reason.JOIN),
    (C, Trigger.PRESENCE_OBSERVED, "nobody left"): (N, NO_DEADLINE),
    (C, Trigger.PRESENCE_OBSERVED, "room gone"): (N, NO_DEADLINE),
    (E, Trigger.AGENT_EVICTED, ""): (R, Reason.ACTIVE),
    (R, Trigger.AGENT_DISPATCHED, ""): (N, Reason.CONFIRM),
    (C, Trigger.UPSTREAM_FAILED, ""): (F, NO_DEADLINE),
    (E, Trigger.UPSTREAM_FAILED, ""): (F, NO_DEADLINE),
    (R, Trigger.UPSTREAM_FAILED, ""): (F, NO_DEADLINE),
    (N, Trigger.AGENT_RESTARTED, ""): (N, Reason.CONFIRM),
    (F, Trigger.AGENT_RESTARTED, ""): (N, Reason.CONFIRM),
    # an operator's re-dispatch (issue 28): a check due at once, a failed part's too
    (N, Trigger.REDISPATCH_ASKED, ""): (N, Reason.BY_HAND),
    (F, Trigger.REDISPATCH_ASKED, ""): (N, Reason.BY_HAND),
    # an agent arrived (or stayed): the incident is over, but for a stall check under way, which
    # decides itself, and a failed room whose stalled agent could not be replaced
    (N, Trigger.AGENT_ARRIVED, ""): (N, NO_DEADLINE),
    (C, Trigger.AGENT_ARRIVED, ""): (N, NO_DEADLINE),
    (R, Trigger.AGENT_ARRIVED, ""): (N, NO_DEADLINE),
    (F, Trigger.AGENT_ARRIVED, ""): (N, NO_DEADLINE),
    (N, Trigger.AGENT_STAYED, ""): (N, NO_DEADLINE),
    (C, Trigger.AGENT_STAYED, ""): (N, NO_DEADLINE),
    (R, Trigger.AGENT_STAYED, ""): (N, NO_DEADLINE),
    # two copies of the agent: the later one is to go (a check due at once), whatever was under way
    # but a step of its own, which finishes first
    (N, Trigger.AGENT_DOUBLED, ""): (N, Reason.DUPLICATE),
    (F, Trigger.AGENT_DOUBLED, ""): (N, Reason.DUPLICATE),
}
for _state in Recovery:
    CHANGED |= {
        (_state, Trigger.ROOM_IDLE, ""): (N, NO_DEADLINE),
        (_state, Trigger.AGENT_ACTIVE, ""): (N, NO_DEADLINE),
        (_state, Trigger.ROOM_CLOSED, ""): (F if _state is F else N, NO_DEADLINE),
        (_state, Trigger.ROOM_GONE, ""): (N, NO_DEADLINE),
    }


def test_every_recovery_state_and_trigger_pair_is_declared_and_sampled() -> None:
    assert set(RECOVERY) == set(product(Recovery, Trigger))
    assert {(s, t) for s, t, _ in CASES} == set(RECOVERY)
    assert set(CHANGED) <= set(CASES)


@pytest.mark.parametrize(
    ("state", "trigger", "what"), CASES, ids=[f"{s}-{t}-{w or 'any'}" for s, t, w in CASES]
)
def test_recovery_rule(state: Recovery, trigger: Trigger, what: str) -> None:
    room, event = recovery_samples(state, trigger)[what]
    view = part(room)
    assert view.recovery is state
    after = part(RECOVERY[(state, trigger)](room, view, event, POLICY))
    unchanged = (view.recovery, view.deadline.reason if view.deadline else None)
    assert (after.recovery, after.deadline.reason if after.deadline else None) == CHANGED.get(
        (state, trigger, what), unchanged
    )
    if (state, trigger, what) not in CHANGED:
        assert RECOVERY[(state, trigger)](room, view, event, POLICY) == room


def test_with_an_active_sla_an_arriving_agent_must_show_activity_and_a_stall_check_decides() -> None:
    policy = Policy("notetaker", active_sla=5.0)
    for state in (N, C, R, F):
        room, event = recovery_samples(state, Trigger.AGENT_ARRIVED)[""]
        after = part(RECOVERY[(state, Trigger.AGENT_ARRIVED)](room, part(room), event, policy))
        assert after.recovery is N and after.deadline is not None
        assert (after.deadline.reason, after.deadline.at) == (Reason.ACTIVE, room.agents[0].joined_at + 5.0)
    room, event = recovery_samples(E, Trigger.AGENT_ARRIVED)[""]
    assert RECOVERY[(E, Trigger.AGENT_ARRIVED)](room, part(room), event, policy) == room


def _of_kind(kind: EventKind) -> Event:
    return Event("EV_1", kind, str(kind), 20, "RM_1", "call-42", fact=Fact(attempt=1, at=20.0))


@pytest.mark.parametrize(
    ("before", "after", "kind", "trigger"),
    [
        (Phase.WAITING, Phase.IDLE, EventKind.PARTICIPANT_LEFT, Trigger.ROOM_IDLE),
        (Phase.IDLE, Phase.WAITING, EventKind.PARTICIPANT_JOINED, Trigger.PEOPLE_WAITING),
        (Phase.WAITING, Phase.WAITING, EventKind.DEADLINE_PASSED, Trigger.PEOPLE_WAITING),
        (Phase.WAITING, Phase.AGENT_PRESENT, EventKind.PARTICIPANT_JOINED, Trigger.AGENT_ARRIVED),
        (Phase.AGENT_ACTIVE, Phase.AGENT_PRESENT, EventKind.PARTICIPANT_JOINED, Trigger.AGENT_ARRIVED),
        (Phase.AGENT_PRESENT, Phase.AGENT_PRESENT, EventKind.OTHER, Trigger.AGENT_STAYED),
        (Phase.AGENT_PRESENT, Phase.AGENT_ACTIVE, EventKind.TRACK_PUBLISHED, Trigger.AGENT_ACTIVE),
        (Phase.AGENT_PRESENT, Phase.AGENT_LOST, EventKind.PARTICIPANT_LEFT, Trigger.AGENT_LOST),
        (Phase.WAITING, Phase.CLOSED, EventKind.ROOM_FINISHED, Trigger.ROOM_CLOSED),
        (Phase.WAITING, Phase.CLOSED, EventKind.PRESENCE_OBSERVED, Trigger.ROOM_CLOSED),
        (Phase.WAITING, Phase.CLOSED, EventKind.RECONCILED, Trigger.ROOM_GONE),
        (Phase.CLOSED, Phase.CLOSED, EventKind.RECONCILED, Trigger.ROOM_CLOSED),  # closed already
    ],
)
def test_where_presence_left_the_room_is_the_recovery_trigger(
    before: Phase, after: Phase, kind: EventKind, trigger: Trigger
) -> None:
    assert settled(before, after, _of_kind(kind)) is trigger


def test_the_presence_table_hands_warden_events_to_recovery_where_they_can_matter() -> None:
    waiting_for_agent = {Phase.WAITING, Phase.AGENT_LOST}
    can_be_recovering = waiting_for_agent | {Phase.AGENT_PRESENT, Phase.AGENT_ACTIVE}  # active: copies
    for trigger in Trigger:
        if trigger.value not in EventKind._value2member_map_:
            continue  # where presence left the room: not an event
        kind = EventKind(trigger)
        by_agent = (EventKind.AGENT_RESTARTED, EventKind.REDISPATCH_ASKED)
        where = waiting_for_agent if kind in by_agent else can_be_recovering
        for phase in Phase:
            assert TABLE[(phase, kind)] is (recover if phase in where else ignore), (phase, kind)


def test_a_table_with_an_undeclared_pair_is_refused_with_the_pair_named() -> None:
    rows: dict[Trigger, tuple[Rule, ...]] = {t: (ignore,) * 5 for t in Trigger if t is not Trigger.ROOM_GONE}
    rows[Trigger.ROOM_IDLE] = (ignore,) * 4
    with pytest.raises(UndeclaredTransition) as refused:
        table("RECOVERY", Recovery, Trigger, rows)
    message = str(refused.value)
    assert "(failed, room_idle)" in message and "(none, room_gone)" in message
    assert "(none, room_idle)" not in message
    with pytest.raises(UndeclaredTransition, match="more rules than Recovery has members for room_gone"):
        table("RECOVERY", Recovery, Trigger, {**rows, Trigger.ROOM_GONE: (ignore,) * 6})


# --- the "ignore" cells of the presence table hide nothing ---------------------------------------

WHO = ["alice", "bob", "agent-1", "greeter"]
WARDEN = [t for t in Trigger if t.value in EventKind._value2member_map_]  # Warden's own events
_ids = iter(range(10**9))


def _participant(who: str, *, track: bool = False) -> Participant:
    kind = ParticipantKind.AGENT if who in ("agent-1", "greeter") else ParticipantKind.STANDARD
    name = "greeter" if who == "greeter" else "notetaker"
    return Participant(who, f"PA_{who}", None if track else int(kind), name)


def _event(
    room: Room, view: AgentView | None, kind: EventKind, who: str, step: int, exists: bool, listed: list[str]
) -> Event:
    """An event of `kind` at `step`; Warden's own are for the agent's current attempt, when it is due."""
    fact, at = None, float(step)
    if kind.value in Trigger._value2member_map_ or kind is EventKind.RECONCILED:
        deadline = view.deadline if view is not None else None
        at = max(at, deadline.at) if deadline is not None else at
        listing = tuple(_participant(w) for w in listed)
        attempt = deadline.attempt if deadline is not None else room.attempt
        fact = Fact(attempt=attempt, at=at, room_exists=exists, participants=listing, error="denied")
    track = kind in (EventKind.TRACK_PUBLISHED, EventKind.HEARTBEAT)
    return Event(
        f"EV_{next(_ids)}",
        kind,
        str(kind),
        int(at),
        "RM_1",
        "call-42",
        _participant(who, track=track),
        fact=fact,
    )


steps = st.lists(
    st.tuples(
        st.sampled_from(list(EventKind)),
        st.sampled_from(WHO),
        st.sampled_from([True, True, True, False]),  # the room exists, for LiveKit
        st.lists(st.sampled_from(WHO), max_size=3, unique=True),  # whom LiveKit lists
    ),
    max_size=30,
)


@settings(max_examples=400, deadline=None)
@given(steps, st.sampled_from([Policy("notetaker"), Policy("notetaker", active_sla=5.0)]))
def test_where_the_presence_table_ignores_warden_events_recovery_has_nothing_to_do(
    sequence: list[tuple[EventKind, str, bool, list[str]]], policy: Policy
) -> None:
    """Idle and agent_active parts have no deadline and no step under way, so the recovery rules would
    change nothing there; idle rooms have nobody waiting and agent_present or agent_active ones have
    our agent, so a restart has nobody to start afresh for."""
    room, rules = Room("RM_1", "call-42"), Rules.of((), policy)
    for step, (kind, who, exists, listed) in enumerate(sequence):
        event = _event(room, room.view("notetaker"), kind, who, step, exists, listed)
        room = transition(room, event, now=step, rules=rules).room
        view = room.views[0]
        if view.phase in (Phase.IDLE, Phase.AGENT_ACTIVE):
            assert (view.recovery, view.deadline) == (N, None)
        if view.phase is Phase.CLOSED:
            assert view.deadline is None and view.recovery in (N, F)
            continue
        for trigger in WARDEN:
            if TABLE[(view.phase, EventKind(trigger))] is not ignore:
                continue
            if trigger in (Trigger.AGENT_RESTARTED, Trigger.REDISPATCH_ASKED):
                assert not room.people or room.our_agents(policy)
            else:
                answer = _event(room, view, EventKind(trigger), who, step, exists, listed)
                assert RECOVERY[(view.recovery, trigger)](room, view, answer, policy) == room

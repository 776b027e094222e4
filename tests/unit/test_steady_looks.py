"""The liveness look's rule 5 (`workers.core.liveness.steady`): at a room whose every expected agent is
present and whose listing names everyone Warden knows there, a look that found the room as Warden knows
it finds it so again from the same listing, whenever it is taken. The liveness cron relies on it to
skip the state machine for such a look at a room unchanged since (`workers.jobs.rooms.looked`)."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from workers.core.events import DispatchInfo, Event, EventKind, Fact, Participant, ParticipantKind, internal
from workers.core.liveness import STATES, quiet_turns, steady
from workers.core.machine import changes, transition
from workers.core.room import Phase, Policy, Room
from workers.core.rules import Rule, Rules

PLAIN = Rules.of((), Policy("assistant"))
# The room's watches as strict as they get: an ACTIVE deadline, a fallback agent and the room told of
# its agent's recovery; and a room that expects two agents (one of them may be missing).
STRICT = Rules.of((), Policy("assistant", active_sla=20.0, fallback_agent="stand-in", notify_room=True))
TWO = Rules.of((Rule(1, agents=("assistant", "notetaker")),), Policy(notify_room=True))
PEOPLE = ("alice", "bob")
AGENTS = (("agent-1", "assistant"), ("agent-2", "assistant"), ("nt-1", "notetaker"))


def person(identity: str, at: float) -> Participant:
    return Participant(identity, f"PA_{identity}", int(ParticipantKind.STANDARD), joined_at=at)


def agent(identity: str, name: str, at: float, state: str = "", publishing: bool = False) -> Participant:
    kind = int(ParticipantKind.AGENT)
    return Participant(identity, f"PA_{identity}", kind, name, at, publishing=publishing, state=state)


def webhook(kind: EventKind, who: Participant, at: float) -> Event:
    return Event(f"EV_{kind}_{who.identity}_{at}", kind, str(kind), int(at), "RM_1", "call-1", who)


def listing(at: float, participants: tuple[Participant, ...]) -> Event:
    fact = Fact(at=at, participants=participants)
    return internal(EventKind.RECONCILED, f"reconciled:RM_1:{at:.3f}", "RM_1", "call-1", fact)


def deadline(room: Room, at: float, present: tuple[Participant, ...]) -> list[Event]:
    """The deadline of the room's first part that has one passing, and LiveKit's answer to its check."""
    view = next((v for v in room.views if v.deadline is not None), None)
    if view is None or view.deadline is None:
        return []
    attempt, when = view.deadline.attempt, max(at, view.deadline.at)
    asked = internal(EventKind.DEADLINE_PASSED, f"d:{attempt}", "RM_1", "call-1", Fact(attempt, when))
    dispatch = DispatchInfo("AD_1", view.agent, "", when - 30, (1,))
    answer = Fact(attempt, when, participants=present, dispatches=(dispatch,))
    return [asked, internal(EventKind.PRESENCE_OBSERVED, f"p:{attempt}", "RM_1", "call-1", answer)]


STEP = st.tuples(
    st.sampled_from(
        ["join", "join", "join", "leave", "track", "look", "look", "deadline", "restart", "unlisted"]
    ),
    st.sampled_from(PEOPLE + tuple(identity for identity, _ in AGENTS)),
    st.sampled_from((*STATES, "")),
    st.floats(min_value=0.5, max_value=90),
)


def lived(
    rules: Rules, steps: list[tuple[str, str, str, float]]
) -> tuple[Room, dict[str, Participant], float]:
    """The room after `steps`; who LiveKit has in it (by identity, with its state) and the time."""
    room, at = Room("RM_1", "call-1"), 100.0
    here: dict[str, Participant] = {}
    names = dict(AGENTS)
    for verb, who, state, wait in steps:
        at += wait
        p = agent(who, names[who], at, state) if who in names else person(who, at)
        if verb == "join":
            here[who] = here.get(who, p)
            events = [webhook(EventKind.PARTICIPANT_JOINED, here[who], at)]
        elif verb == "unlisted":  # its webhook came; LiveKit's listing does not show it (yet, or any more)
            events = [webhook(EventKind.PARTICIPANT_JOINED, p, at)]
        elif verb == "restart":  # its agent's incident restarted the deployment
            fact = Fact(at=at, agent=names.get(who, "assistant"))
            events = [internal(EventKind.AGENT_RESTARTED, f"r:{at}", "RM_1", "call-1", fact)]
        elif verb == "leave":
            events = [webhook(EventKind.PARTICIPANT_LEFT, here.pop(who, p), at)]
        elif verb == "track" and who in here:
            here[who] = replace(here[who], publishing=True)
            events = [webhook(EventKind.TRACK_PUBLISHED, Participant(who, f"PA_{who}"), at)]
        elif verb == "look":
            if who in here and who in names:
                here[who] = replace(here[who], state=state)
            events = [listing(at, tuple(here.values()))]
        else:
            events = deadline(room, at, tuple(here.values()))
        for event in events:
            room = transition(room, event, now=at, rules=rules).room
    return room, here, at


def _in(p: Participant, state: str | None) -> Participant:
    return replace(p, state=state) if state is not None and p.kind == ParticipantKind.AGENT else p


@settings(max_examples=1000, deadline=None)
@given(
    rules=st.sampled_from([PLAIN, STRICT, TWO]),
    steps=st.lists(STEP, min_size=1, max_size=16),
    states=st.lists(st.sampled_from((*(None,) * 10, *STATES)), min_size=3, max_size=3),
    first=st.floats(min_value=0, max_value=100),
    later=st.floats(min_value=0.001, max_value=100_000),
)
def test_a_steady_look_found_as_known_is_found_so_whenever_it_is_taken(
    rules: Rules,
    steps: list[tuple[str, str, str, float]],
    states: list[str | None],
    first: float,
    later: float,
) -> None:
    room, here, at = lived(rules, [*steps, ("look", "alice", "", 1.0)])  # the last look: as LiveKit has it
    # each agent as the room's last look left it (None), or in another state since
    listed = tuple(_in(p, states[i % 3]) for i, p in enumerate(here.values()))
    seen = quiet_turns(room, listed)
    t1 = at + first
    if not steady(room, seen) or changes(room, listing(t1, seen), now=t1, rules=rules):
        return
    t2 = t1 + later
    assert not changes(room, listing(t2, seen), now=t2, rules=rules)


def test_steady_rooms_are_those_whose_agents_are_all_here_and_all_listed() -> None:
    alice, assistant = person("alice", 100.0), agent("agent-1", "assistant", 101.0, "listening")
    room = Room("RM_1", "call-1")
    for event in (webhook(EventKind.PARTICIPANT_JOINED, p, p.joined_at) for p in (alice, assistant)):
        room = transition(room, event, now=event.at, rules=PLAIN).room
    assert room.views[0].phase is Phase.AGENT_PRESENT
    assert steady(room, (alice, assistant))
    assert not steady(room, (assistant,))  # alice not listed: kept only while her join is recent
    for look_at in (110.0, 10_000.0):  # found as known then, and so an hour later
        assert not changes(room, listing(look_at, (alice, assistant)), now=look_at, rules=PLAIN)
    waiting = transition(room, webhook(EventKind.PARTICIPANT_LEFT, assistant, 120), now=120, rules=PLAIN).room
    assert waiting.views[0].phase is Phase.AGENT_LOST
    assert not steady(waiting, (alice,))  # people wait: the time of a look can matter


def test_a_look_at_people_waiting_may_find_news_only_by_being_later() -> None:
    # Alice waits for the assistant, whose incident restarted it: nothing new 1 s after, but by 40 s she
    # has waited long enough for the fallback agent. Such a room is not steady.
    room, here, at = lived(STRICT, [("join", "alice", "", 1.0), ("restart", "agent-1", "", 2.0)])
    listed = tuple(here.values())
    assert not changes(room, listing(at + 1, listed), now=at + 1, rules=STRICT)
    assert changes(room, listing(at + 40, listed), now=at + 40, rules=STRICT)
    assert not steady(room, listed)

"""The whole (phase, event) table of the room state machine, walked pair by pair."""

from __future__ import annotations

from itertools import product

import pytest

from workers.core.diagram import RULES, SAMPLE_ROOMS, part, phase_after, sample_events
from workers.core.events import EventKind as K
from workers.core.machine import TABLE, recover, transition
from workers.core.room import Phase
from workers.core.table import ignore

I, W, P, A, L, C, N = (
    Phase.IDLE,
    Phase.WAITING,
    Phase.AGENT_PRESENT,
    Phase.AGENT_ACTIVE,
    Phase.AGENT_LOST,
    Phase.CLOSED,
    Phase.NO_AGENT_EXPECTED,
)

# (phase before, event kind, whom it concerns) -> phase after, as the room's one expected agent (the
# notetaker) sees it. Written by hand from the rules in workers/core/machine.py; the sample rooms hold
# one person "alice" and, in P and A, the agent "agent-1".
EXPECTED: dict[tuple[Phase, K, str], Phase] = {}
for _phase in (I, W, P, A, L):
    EXPECTED |= {
        (_phase, K.ROOM_STARTED, ""): _phase,
        (_phase, K.ROOM_FINISHED, ""): C,
        (_phase, K.TRACK_UNPUBLISHED, "agent"): _phase,
        (_phase, K.AGENT_JOB_STARTED, ""): _phase,
        (_phase, K.AGENT_JOB_PENDING, ""): _phase,
        (_phase, K.OTHER, ""): _phase,
        # Warden's own events answer a recovery step; the sample rooms are in none, so they change nothing
        (_phase, K.DEADLINE_PASSED, ""): _phase,
        (_phase, K.PRESENCE_OBSERVED, ""): _phase,
        (_phase, K.AGENT_EVICTED, ""): _phase,
        (_phase, K.AGENT_DISPATCHED, ""): _phase,
        (_phase, K.UPSTREAM_FAILED, ""): _phase,
        (_phase, K.AGENT_RESTARTED, ""): _phase,
        (_phase, K.REDISPATCH_ASKED, ""): _phase,
        (_phase, K.RECONCILED, ""): I,  # the sample answer: LiveKit has the room, with nobody in it
    }
EXPECTED |= {
    # a person joins: an empty room starts waiting; otherwise the phase holds
    (I, K.PARTICIPANT_JOINED, "person"): W,
    (W, K.PARTICIPANT_JOINED, "person"): W,
    (P, K.PARTICIPANT_JOINED, "person"): P,
    (A, K.PARTICIPANT_JOINED, "person"): A,
    (L, K.PARTICIPANT_JOINED, "person"): L,
    # the agent joins (a rejoin is a new session: present again, not yet active)
    (I, K.PARTICIPANT_JOINED, "agent"): P,
    (W, K.PARTICIPANT_JOINED, "agent"): P,
    (P, K.PARTICIPANT_JOINED, "agent"): P,
    (A, K.PARTICIPANT_JOINED, "agent"): P,
    (L, K.PARTICIPANT_JOINED, "agent"): P,
    # the only person leaves
    (I, K.PARTICIPANT_LEFT, "person"): I,
    (W, K.PARTICIPANT_LEFT, "person"): I,
    (P, K.PARTICIPANT_LEFT, "person"): P,
    (A, K.PARTICIPANT_LEFT, "person"): A,
    (L, K.PARTICIPANT_LEFT, "person"): I,
    # the agent leaves while alice remains: lost
    (I, K.PARTICIPANT_LEFT, "agent"): I,
    (W, K.PARTICIPANT_LEFT, "agent"): W,
    (P, K.PARTICIPANT_LEFT, "agent"): L,
    (A, K.PARTICIPANT_LEFT, "agent"): L,
    (L, K.PARTICIPANT_LEFT, "agent"): L,
    # the agent publishes a track: active
    (I, K.TRACK_PUBLISHED, "agent"): I,
    (W, K.TRACK_PUBLISHED, "agent"): W,
    (P, K.TRACK_PUBLISHED, "agent"): A,
    (A, K.TRACK_PUBLISHED, "agent"): A,
    (L, K.TRACK_PUBLISHED, "agent"): L,
    # the agent's job ended: its participant is gone
    (I, K.AGENT_JOB_ENDED, ""): I,
    (W, K.AGENT_JOB_ENDED, ""): W,
    (P, K.AGENT_JOB_ENDED, ""): L,
    (A, K.AGENT_JOB_ENDED, ""): L,
    (L, K.AGENT_JOB_ENDED, ""): L,
}
for _phase in (I, W, P, A, L):
    EXPECTED[(_phase, K.HEARTBEAT, "agent")] = EXPECTED[(_phase, K.TRACK_PUBLISHED, "agent")]
    for _who in ("person", "agent"):
        EXPECTED[(_phase, K.PARTICIPANT_CONNECTION_ABORTED, _who)] = EXPECTED[
            (_phase, K.PARTICIPANT_LEFT, _who)
        ]
for _kind in K:
    for _who in sample_events(_kind):
        EXPECTED[(C, _kind, _who)] = C
        # A room that expects no agent (the room as a whole, as its row shows it): people are there,
        # whoever joins (an agent too: it was not asked for); nobody left is idle, room_finished closed.
        EXPECTED[(N, _kind, _who)] = N
EXPECTED |= {
    (N, K.ROOM_FINISHED, ""): C,
    (N, K.PARTICIPANT_LEFT, "person"): I,
    (N, K.PARTICIPANT_CONNECTION_ABORTED, "person"): I,
    (N, K.RECONCILED, ""): I,
    (N, K.AGENT_JOB_STARTED, ""): W,  # LiveKit Cloud says a job started: that agent is expected
    (N, K.AGENT_JOB_PENDING, ""): W,  # or that one waits for a worker (protocol 1.53.1): the same
}

CASES = [(phase, kind, who) for phase, kind in product(Phase, K) for who in sample_events(kind)]


def test_every_phase_and_event_pair_is_declared() -> None:
    assert set(TABLE) == set(product(Phase, K))
    assert {(phase, kind) for phase, kind, _ in EXPECTED} == set(TABLE)


@pytest.mark.parametrize(("phase", "kind", "who"), CASES, ids=[f"{p}-{k}-{w or 'any'}" for p, k, w in CASES])
def test_transition(phase: Phase, kind: K, who: str) -> None:
    assert phase_after(phase, sample_events(kind)[who]) == EXPECTED[(phase, kind, who)]


def test_closed_room_never_changes() -> None:
    closed = SAMPLE_ROOMS[C]
    for kind in K:
        for event in sample_events(kind).values():
            after = transition(closed, event, now=100.0, rules=RULES).room
            assert (after.people, after.agents, part(after).phase) == ((), (), C)


def test_who_is_there_does_not_depend_on_whose_phase_reads_it() -> None:
    """Who is there is the room's, changed once per event by the rule read in the phase of whom the
    event concerns: every presence rule is the same in every open phase (only the handing of Warden's
    own events to recovery depends on the phase of the agent's part they are for)."""
    for kind in K:
        rules = {TABLE[(phase, kind)] for phase in Phase if phase is not C}
        assert len(rules) == 1 or rules == {recover, ignore}, kind

"""Issue 23's promise, pure and step by step: a dispatch LiveKit may still be serving is never deleted
(its job not listed yet, or listed and its agent still connecting), two copies of an agent lose the
later one (or the one whose dispatch is gone), a check judges by what LiveKit lists when it runs, and a
re-fold never hands out a deadline number used before."""

from __future__ import annotations

from dataclasses import replace

from tests.support.driven import Driven
from workers.core.events import DispatchInfo, Event, EventKind, Fact, JobStatus, Participant, ParticipantKind
from workers.core.machine import fold
from workers.core.recovery import CONNECT_GRACE, LISTING_GRACE
from workers.core.renumber import renumbered
from workers.core.room import (
    Deadline,
    Evict,
    Phase,
    Policy,
    Reason,
    Recovery,
    Redispatch,
    ReportBreach,
    Room,
    ScheduleDeadline,
)
from workers.core.rules import Rules

SLA = 4.0
RULES = Rules.of((), Policy("assistant", join_sla=SLA, rejoin_sla=SLA, max_redispatches=3))
ACTIVE_RULES = Rules.of((), Policy("assistant", join_sla=SLA, rejoin_sla=SLA, active_sla=2.0))
J, L, T = EventKind.PARTICIPANT_JOINED, EventKind.PARTICIPANT_LEFT, EventKind.TRACK_PUBLISHED
ALICE = Participant("alice", "PA_alice", int(ParticipantKind.STANDARD))


def agent(identity: str, *, publishing: bool = False) -> Participant:
    return Participant(
        identity, f"PA_{identity}", int(ParticipantKind.AGENT), "assistant", publishing=publishing
    )


def dispatch(made: float, *agents: str, listed: bool = True, status: int = JobStatus.RUNNING) -> DispatchInfo:
    """A dispatch made at `made`; its job (serving `agents`) listed when `listed` and agents are given."""
    jobs = (status,) * len(agents) if listed else ()
    return DispatchInfo(
        f"AD_{made:g}", "assistant", created_at=made, statuses=jobs, agents=agents if listed else ()
    )


def test_the_cold_start_is_awaited_not_doubled() -> None:
    """The issue's cold start: at the 4-s SLA the application's dispatch has no job listed (the server
    lists it ~5 s on): Warden looks again `LISTING_GRACE` after the dispatch was made, and the agent,
    arriving at 4.7 s, ends it."""
    room = Driven(RULES)
    room.webhook(J, 100, ALICE)
    acted = room.check(104.0, (ALICE,), dispatch(100.0, listed=False))
    assert not [a for a in acted if isinstance(a, Redispatch | ReportBreach)]
    assert room.deadline is not None and room.deadline.at == 100.0 + LISTING_GRACE
    room.webhook(J, 104, agent("agent-AJ_1"))
    assert room.deadline is None and room.room.views[0].phase is Phase.AGENT_PRESENT


def test_a_listed_job_whose_agent_is_starting_is_awaited_then_replaced_once_its_connect_grace_is_over() -> (
    None
):
    """JS_RUNNING means a worker accepted, not that the agent joined: its dispatch is kept until
    `CONNECT_GRACE` after it was made; a worker that accepts and never connects is then replaced."""
    room = Driven(RULES)
    room.webhook(J, 100, ALICE)
    accepted = dispatch(100.0, "agent-AJ_1")
    room.check(106.5, (ALICE,), accepted)
    assert room.deadline is not None and room.deadline.at == 100.0 + CONNECT_GRACE
    acted = room.check(110.0, (ALICE,), accepted)
    assert [a.stale for a in acted if isinstance(a, Redispatch)] == [(accepted.id,)]


def test_a_dispatch_with_no_job_after_the_listing_grace_is_replaced_at_once() -> None:
    room = Driven(RULES)
    room.webhook(J, 100, ALICE)
    unserved = dispatch(90.0, listed=False)  # made 14 s before the check: nobody took it
    acted = room.check(104.0, (ALICE,), unserved)
    assert [a.stale for a in acted if isinstance(a, Redispatch)] == [(unserved.id,)]


def test_the_dispatch_of_an_agent_that_left_is_not_awaited() -> None:
    """A job stays JS_RUNNING for good after its agent left: the dispatch that served the agent that
    left is replaced at the rejoin deadline, not awaited."""
    room = Driven(RULES)
    room.webhook(J, 100, ALICE)
    room.webhook(J, 101, agent("agent-AJ_1"))
    room.webhook(L, 103, agent("agent-AJ_1"))
    assert room.room.views[0].phase is Phase.AGENT_LOST
    served = dispatch(100.5, "agent-AJ_1")
    acted = room.check(107.0, (ALICE,), served)
    assert [a.stale for a in acted if isinstance(a, Redispatch)] == [(served.id,)]


def test_two_copies_lose_the_later_one_at_once_with_no_breach_and_no_redispatch() -> None:
    room = Driven(RULES)
    room.webhook(J, 100, ALICE)
    room.webhook(J, 101, agent("agent-AJ_1"))
    acted = room.webhook(J, 109, agent("agent-AJ_2"))
    (due,) = [a for a in acted if isinstance(a, ScheduleDeadline)]
    assert (due.reason, due.at) == (Reason.DUPLICATE, 109.0)  # due at once
    both = (ALICE, agent("agent-AJ_1"), agent("agent-AJ_2"))
    acted = room.check(109.2, both, dispatch(100.0, "agent-AJ_1"), dispatch(105.0, listed=False))
    assert [a for a in acted if isinstance(a, Evict)] == [Evict(due.attempt, "agent-AJ_2", "assistant")]
    acted = room.own(EventKind.AGENT_EVICTED, Fact(due.attempt, 109.3))
    assert not [a for a in room.actions if isinstance(a, Redispatch | ReportBreach)]
    view = room.room.views[0]
    assert (view.phase, view.recovery, view.deadline) == (Phase.AGENT_PRESENT, Recovery.NONE, None)
    assert [a.identity for a in room.room.agents] == ["agent-AJ_1"]


def test_of_two_copies_the_one_whose_dispatch_is_gone_goes_even_when_it_came_first() -> None:
    """Warden replaced a dispatch whose agent was too slow; that agent came after all (its entrypoint
    runs on), then the replacement: the first one's job was terminated and it will leave within 15 s,
    so it is the one removed, and the replacement stays."""
    room = Driven(RULES)
    room.webhook(J, 100, ALICE)
    room.webhook(J, 112, agent("agent-AJ_1"))
    room.webhook(J, 122, agent("agent-AJ_2"))
    both = (ALICE, agent("agent-AJ_1"), agent("agent-AJ_2"))
    acted = room.check(122.1, both, dispatch(110.0, "agent-AJ_2"))  # AJ_1's dispatch was deleted
    assert [a.identity for a in acted if isinstance(a, Evict)] == ["agent-AJ_1"]


def test_of_two_copies_none_yet_named_by_a_job_the_listing_is_awaited() -> None:
    """The replacement's agent came before its job is listed, beside the agent of the deleted dispatch:
    which one stays is known once the listing names it (up to `LISTING_GRACE` after the dispatch)."""
    room = Driven(RULES)
    room.webhook(J, 100, ALICE)
    room.webhook(J, 112, agent("agent-AJ_1"))
    room.webhook(J, 114, agent("agent-AJ_2"))
    both = (ALICE, agent("agent-AJ_1"), agent("agent-AJ_2"))
    acted = room.check(114.8, both, dispatch(110.0, listed=False))
    assert not [a for a in acted if isinstance(a, Evict)]
    assert room.deadline is not None and room.deadline.at == 110.0 + LISTING_GRACE
    acted = room.check(116.0, both, dispatch(110.0, "agent-AJ_2"))
    assert [a.identity for a in acted if isinstance(a, Evict)] == ["agent-AJ_1"]


def test_two_working_copies_are_still_two() -> None:
    room = Driven(RULES)
    room.webhook(J, 100, ALICE)
    for identity, at in (("agent-AJ_1", 101), ("agent-AJ_2", 102)):
        room.webhook(J, at, agent(identity))
        room.webhook(T, at, Participant(identity, f"PA_{identity}"))  # a track event names no kind
    assert room.room.views[0].phase is Phase.AGENT_ACTIVE
    both = (ALICE, agent("agent-AJ_1"), agent("agent-AJ_2"))
    acted = room.check(102.5, both)
    assert [a.identity for a in acted if isinstance(a, Evict)] == ["agent-AJ_2"]


def test_a_stall_check_judges_by_the_tracks_livekit_lists_when_it_runs() -> None:
    """Whole-second webhook times can put an ACTIVE deadline before the agent's `track_published` is
    heard; LiveKit's listing shows its track: it is working, not evicted."""
    room = Driven(ACTIVE_RULES)
    room.webhook(J, 100, ALICE)
    room.webhook(J, 101, agent("agent-AJ_1"))
    assert room.deadline is not None and room.deadline.reason is Reason.ACTIVE
    acted = room.check(103.0, (ALICE, agent("agent-AJ_1", publishing=True)), dispatch(100.0, "agent-AJ_1"))
    assert not [a for a in acted if isinstance(a, Evict | Redispatch)]
    assert room.room.views[0].phase is Phase.AGENT_ACTIVE and room.deadline is None


def test_a_refold_never_reuses_a_deadline_number() -> None:
    """A refold can number deadlines otherwise than the steps did: a deadline that was not in the room
    before gets a number above every one issued; one that was keeps its number."""
    room = Driven(ACTIVE_RULES)
    room.webhook(J, 100, ALICE)
    room.webhook(J, 101, agent("agent-AJ_1"))
    before = room.room
    assert before.attempt == 2 and room.deadline == Deadline(2, 103.0, Reason.ACTIVE)
    # the log re-folded with the agent's join as LiveKit dated it, a second earlier (its webhook came
    # late): the re-fold's active deadline takes number 1 again, the join deadline's, whose job and
    # events exist
    events = [
        (Event("EV_a", J, str(J), 100, "RM_1", "call-1", ALICE), 100.0),
        (Event("EV_b", J, str(J), 99, "RM_1", "call-1", agent("agent-AJ_1")), 101.0),
    ]
    folded = fold(Room("RM_1", "call-1"), events, rules=ACTIVE_RULES)
    assert folded.views[0].deadline is not None and folded.views[0].deadline.attempt <= before.attempt
    after = renumbered(before, folded)
    assert after.views[0].deadline == replace(folded.views[0].deadline, attempt=3) and after.attempt == 3
    again = [events[0], (replace(events[1][0], created_at=101), 101.0)]
    same = renumbered(before, fold(Room("RM_1", "call-1"), again, rules=ACTIVE_RULES))
    assert same.views[0].deadline == before.views[0].deadline and same.attempt == before.attempt
    # the same deadline, but the re-fold could not match the events of its step (they carry the number
    # `before` gave it): asked about again under a new number, never left due with its events taken
    checking = before.put(replace(before.views[0], recovery=Recovery.CHECKING))
    asked = renumbered(checking, fold(Room("RM_1", "call-1"), again, rules=ACTIVE_RULES))
    assert asked.views[0].deadline is not None and asked.views[0].deadline.attempt == 3

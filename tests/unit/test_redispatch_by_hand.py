"""Issue 28, pure: an operator's re-dispatch (`REDISPATCH_ASKED`) is a check due at once with Warden's
own safety: a dispatch that may still bring the agent is awaited, an agent there means nothing to do,
the re-dispatch limit does not stop it (a failed part is taken up again), stale dispatches go before
the new one, and a request while one stands, for an agent not expected, or with nobody waiting, changes
nothing."""

from __future__ import annotations

from tests.support.driven import Driven
from workers.core.events import DispatchInfo, EventKind, Fact, JobStatus, Participant, ParticipantKind
from workers.core.recovery import LISTING_GRACE
from workers.core.room import Policy, Reason, Recovery, Redispatch, ReportFailed
from workers.core.rules import Rules

RULES = Rules.of((), Policy("assistant", join_sla=4.0, rejoin_sla=4.0, max_redispatches=1))
J = EventKind.PARTICIPANT_JOINED
ALICE = Participant("alice", "PA_alice", int(ParticipantKind.STANDARD))
AGENT = Participant("agent-1", "PA_agent-1", int(ParticipantKind.AGENT), "assistant")


def asked(room: Driven, at: float, agent: str = "assistant") -> list[object]:
    return room.own(EventKind.REDISPATCH_ASKED, Fact(at=at, agent=agent, by="alice"))


def failed_room() -> Driven:
    """People wait; the one re-dispatch allowed did not bring the agent: the part failed."""
    room = Driven(RULES)
    room.webhook(J, 100, ALICE)
    room.check(104.0, (ALICE,))
    assert room.deadline is not None
    room.own(EventKind.AGENT_DISPATCHED, Fact(room.deadline.attempt, 104.0, dispatch_id="AD_1"))
    assert room.deadline is not None and room.deadline.reason is Reason.CONFIRM
    unserved = DispatchInfo("AD_1", "assistant", created_at=104.0, statuses=())
    acted = room.check(room.deadline.at, (ALICE,), unserved)
    assert any(isinstance(a, ReportFailed) for a in acted)
    assert room.room.views[0].recovery is Recovery.FAILED
    return room


def test_a_failed_room_is_re_dispatched_by_hand_deleting_the_stale_dispatch_first() -> None:
    room = failed_room()
    asked(room, 200.0)
    assert room.room.views[0].recovery is Recovery.NONE
    assert room.deadline is not None and (room.deadline.reason, room.deadline.at) == (Reason.BY_HAND, 200.0)
    assert asked(room, 200.5) == []  # one standing request: a second changes nothing
    acted = room.check(200.0, (ALICE,), DispatchInfo("AD_1", "assistant", created_at=104.0, statuses=()))
    assert [(a.agent_name, a.stale) for a in acted if isinstance(a, Redispatch)] == [("assistant", ("AD_1",))]


def test_a_dispatch_that_may_still_bring_the_agent_is_awaited_and_an_agent_there_ends_it() -> None:
    room = failed_room()
    asked(room, 200.0)
    young = DispatchInfo("AD_app", "assistant", created_at=198.0, statuses=())  # no job listed yet
    acted = room.check(200.0, (ALICE,), young)
    assert not [a for a in acted if isinstance(a, Redispatch)]
    assert room.deadline is not None and room.deadline.at == 198.0 + LISTING_GRACE
    running = DispatchInfo("AD_app", "assistant", created_at=198.0, statuses=(JobStatus.RUNNING,))
    room.check(room.deadline.at, (ALICE, AGENT), running)
    assert room.deadline is None and not [a for a in room.actions if isinstance(a, Redispatch)][1:]


def test_a_request_for_an_agent_not_expected_or_with_nobody_waiting_changes_nothing() -> None:
    room = Driven(RULES)
    room.webhook(J, 100, ALICE)
    before = room.room.views
    assert asked(room, 101.0, agent="stranger") == [] and room.room.views == before
    room.webhook(J, 102, AGENT)  # the agent is there: nobody waits for it
    before = room.room.views
    assert asked(room, 103.0) == [] and room.room.views == before

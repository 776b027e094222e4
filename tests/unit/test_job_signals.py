"""LiveKit's job signals at a check, pure and step by step (issue 26, `workers.core.job_signals`): a job
LiveKit is retrying is left to it for one more join SLA; a job refused for want of capacity is
re-dispatched with backoff and never gives the room up; a cancelled job, a deleted dispatch, a closed
room are no failure; and the jobs a worker took whose agent never came are reported with the breach."""

from __future__ import annotations

from tests.support.driven import Driven
from workers.core import job_signals
from workers.core.events import (
    DispatchInfo,
    Event,
    EventKind,
    Fact,
    Job,
    JobInfo,
    JobReason,
    JobStatus,
    Participant,
    ParticipantKind,
)
from workers.core.room import (
    Policy,
    Recovery,
    Redispatch,
    ReportBreach,
    ReportFailed,
)
from workers.core.rules import Rules

SLA = 15.0
RULES = Rules.of((), Policy("assistant", join_sla=SLA, rejoin_sla=SLA, max_redispatches=3))
ALICE = Participant("alice", "PA_alice", int(ParticipantKind.STANDARD))


def agent(identity: str) -> Participant:
    return Participant(identity, f"PA_{identity}", int(ParticipantKind.AGENT), "assistant")


J, ENDED = EventKind.PARTICIPANT_JOINED, EventKind.AGENT_JOB_ENDED
R, S, F, C = JobStatus.RUNNING, JobStatus.SUCCESS, JobStatus.FAILED, JobStatus.CANCELLED
P = JobStatus.PENDING


def dispatch(made: float, *jobs: JobInfo) -> DispatchInfo:
    return DispatchInfo(
        f"AD_{made:g}",
        "assistant",
        created_at=made,
        statuses=tuple(j.status for j in jobs),
        agents=tuple(j.identity for j in jobs if j.identity),
        jobs=jobs,
    )


def breaches(actions: list[object]) -> list[ReportBreach]:
    return [a for a in actions if isinstance(a, ReportBreach)]


def redispatches(actions: list[object]) -> list[Redispatch]:
    return [a for a in actions if isinstance(a, Redispatch)]


def test_a_job_livekit_retries_is_left_to_it_and_its_agent_coming_ends_it() -> None:
    room = Driven(RULES)
    room.webhook(J, 100, ALICE)
    retried = dispatch(100.0, JobInfo(P, JobReason.RETRYING))
    acted = room.check(115.0, (ALICE,), retried)
    assert not redispatches(acted) and not breaches(acted)
    assert room.deadline is not None and room.deadline.at == 100.0 + 2 * SLA  # one more join SLA
    room.webhook(J, 106, agent("agent-AJ_1"))
    assert room.deadline is None and not redispatches(room.actions)


def test_a_job_livekit_still_retries_one_join_sla_after_the_deadline_is_replaced_as_today() -> None:
    room = Driven(RULES)
    room.webhook(J, 100, ALICE)
    retried = dispatch(100.0, JobInfo(F, JobReason.RETRYING))
    assert not redispatches(room.check(115.0, (ALICE,), retried))
    acted = room.check(130.0, (ALICE,), retried)  # looking again does not move the bound
    assert [a.stale for a in redispatches(acted)] == [(retried.id,)]
    assert breaches(acted)


def test_without_retrying_a_failed_job_is_replaced_at_the_deadline() -> None:
    room = Driven(RULES)
    room.webhook(J, 100, ALICE)
    failed = dispatch(100.0, JobInfo(F))
    assert redispatches(room.check(115.0, (ALICE,), failed))


def test_a_job_refused_for_want_of_capacity_is_redispatched_with_backoff_and_never_given_up() -> None:
    """Policy allows 3 re-dispatches; refused for capacity, a fourth and fifth come, each confirm
    deadline twice as far, and the room is never failed (a restart adds no capacity)."""
    room = Driven(RULES)
    room.webhook(J, 100, ALICE)
    at, waits = 115.0, []
    for n in range(5):
        full = dispatch(at - 1, JobInfo(P, JobReason.NO_CAPACITY))
        acted = room.check(at, (ALICE,), full)
        assert not [a for a in acted if isinstance(a, ReportFailed)]
        (made,) = redispatches(acted)
        if n == 0:
            assert breaches(acted) == [ReportBreach("join", "assistant", full=True)]
        room.own(EventKind.AGENT_DISPATCHED, Fact(made.attempt, at, dispatch_id=f"AD_{n}"))
        assert room.deadline is not None
        waits.append(room.deadline.at - at)
        at = room.deadline.at
    assert waits == [SLA, 2 * SLA, 4 * SLA, 8 * SLA, 16 * SLA]
    assert room.room.views[0].recovery is not Recovery.FAILED


def test_without_capacity_refusals_the_room_fails_after_its_redispatches() -> None:
    room = Driven(Rules.of((), Policy("assistant", join_sla=SLA, max_redispatches=1)))
    room.webhook(J, 100, ALICE)
    (made,) = redispatches(room.check(115.0, (ALICE,), dispatch(99.0, JobInfo(F))))
    room.own(EventKind.AGENT_DISPATCHED, Fact(made.attempt, 115.0, dispatch_id="AD_2"))
    acted = room.check(130.0, (ALICE,), dispatch(115.0, JobInfo(F)))
    assert [a for a in acted if isinstance(a, ReportFailed)]


def test_a_cancelled_job_a_deleted_dispatch_a_closed_room_are_no_failure() -> None:
    for job in (
        JobInfo(C),
        JobInfo(F, JobReason.DISPATCH_DELETED),
        JobInfo(F, JobReason.ROOM_CLOSED),
    ):
        room = Driven(RULES)
        room.webhook(J, 100, ALICE)
        acted = room.check(115.0, (ALICE,), dispatch(99.0, job))
        assert not redispatches(acted) and not breaches(acted), job
        # looked at again a minute on, in case a dispatch is made since; not in recovery
        assert room.deadline is not None and room.deadline.at == 115.0 + 60.0
        assert room.room.views[0].recovery is Recovery.NONE


def test_an_agent_whose_job_was_cancelled_while_people_remain_is_no_breach() -> None:
    """`agent_job_ended` (JS_CANCELLED) takes the agent out; at the rejoin deadline LiveKit lists the
    job cancelled: nothing to do."""
    room = Driven(RULES)
    room.webhook(J, 100, ALICE)
    room.webhook(J, 101, agent("agent-AJ_1"))
    ended = Job("AJ_1", "assistant", "AD_100", C, "agent-AJ_1", reason=JobReason.UNSPECIFIED)
    room(Event("EV_end", ENDED, "agent_job_ended", 103, "RM_1", "call-1", job=ended))
    acted = room.check(118.0, (ALICE,), dispatch(100.0, JobInfo(C, identity="agent-AJ_1")))
    assert not redispatches(acted) and not breaches(acted)


def test_a_failed_job_whose_agent_left_an_empty_room_is_no_failure() -> None:
    """The agent shuts down when the last person leaves and LiveKit marks its job failed
    (livekit/livekit#4447): no deadline, no breach; and when someone comes back later, its worker is
    not blamed for the job."""
    room = Driven(RULES)
    room.webhook(J, 100, ALICE)
    room.webhook(J, 101, agent("agent-AJ_1"))
    room.webhook(EventKind.PARTICIPANT_LEFT, 110, ALICE)
    ended = Job("AJ_1", "assistant", "AD_100", F, "agent-AJ_1", worker_id="W_1")
    acted = room(Event("EV_end", ENDED, "agent_job_ended", 111, "RM_1", "call-1", job=ended))
    assert not breaches(acted) and room.deadline is None
    room.webhook(J, 200, ALICE)
    acted = room.check(215.0, (ALICE,), dispatch(100.0, JobInfo(F, worker_id="W_1", identity="agent-AJ_1")))
    assert [b.unjoined for b in breaches(acted)] == [()]


def test_the_jobs_a_worker_took_whose_agent_never_came_go_with_the_breach() -> None:
    room = Driven(RULES)
    room.webhook(J, 100, ALICE)
    swallowed = dispatch(99.0, JobInfo(R, worker_id="W_bad", identity="agent-AJ_1"))
    acted = room.check(115.0, (ALICE,), swallowed)
    assert breaches(acted) == [ReportBreach("join", "assistant", unjoined=(("AD_99", "W_bad"),))]


def test_a_job_webhook_keeps_its_reason_and_worker() -> None:
    from workers.adapters.webhook import from_webhook_json

    event = from_webhook_json(
        {
            "event": "agent_job_pending",
            "id": "EV_1",
            "job": {
                "id": "AJ_1",
                "agentName": "assistant",
                "room": {"sid": "RM_1", "name": "call-1"},
                "state": {"status": "JS_PENDING", "reason": "JSR_RETRYING", "workerId": "W_1"},
            },
        },
        fallback_id="x",
    )
    assert event.kind is EventKind.AGENT_JOB_PENDING
    assert event.job is not None and (event.job.reason, event.job.worker_id) == (JobReason.RETRYING, "W_1")
    too_long = from_webhook_json(
        {"event": "agent_job_ended", "job": {"id": "AJ_1", "state": {"workerId": "W" * 65}}}, fallback_id="x"
    )
    assert too_long.job is not None and too_long.job.worker_id == ""  # dropped, not refused


def test_an_agent_job_pending_webhook_makes_its_agent_expected() -> None:
    room = Driven(Rules.of((), Policy(join_sla=SLA)))
    room.webhook(J, 100, Participant("bob", "PA_bob", 0))
    pending = Job("AJ_1", "notetaker", "AD_1", P)
    acted = room(
        Event("EV_p", EventKind.AGENT_JOB_PENDING, "agent_job_pending", 101, "RM_1", "call-1", job=pending)
    )
    assert [v.agent for v in room.room.views] == ["notetaker"] and acted


def test_an_agent_whose_dispatch_was_deleted_by_the_application_is_no_breach() -> None:
    """LiveKit Cloud's `agent_job_ended` says JSR_DISPATCH_DELETED; the dispatch is no longer listed, so
    only the webhook tells: nothing re-dispatched at the rejoin deadline, until a dispatch is made."""
    room = Driven(RULES)
    room.webhook(J, 100, ALICE)
    room.webhook(J, 101, agent("agent-AJ_1"))
    ended = Job("AJ_1", "assistant", "AD_100", C, "agent-AJ_1", reason=JobReason.DISPATCH_DELETED)
    room(Event("EV_end", ENDED, "agent_job_ended", 103, "RM_1", "call-1", job=ended))
    acted = room.check(118.0, (ALICE,))
    assert not redispatches(acted) and not breaches(acted)
    acted = room.check(178.0, (ALICE,), dispatch(150.0, JobInfo(F)))  # the application dispatched again
    assert redispatches(acted)


def test_full_workers_stay_full_until_the_next_dispatchs_job_is_listed() -> None:
    """The re-dispatch's refusal is listed seconds after it: at its confirm deadline, with no job listed
    yet, the room is not given up (it waits for the listing), and the refusal then re-dispatches it."""
    room = Driven(Rules.of((), Policy("assistant", join_sla=SLA, max_redispatches=1)))
    room.webhook(J, 100, ALICE)
    full = dispatch(99.0, JobInfo(P, JobReason.NO_CAPACITY))
    (made,) = redispatches(room.check(115.0, (ALICE,), full))
    room.own(EventKind.AGENT_DISPATCHED, Fact(made.attempt, 115.0, dispatch_id="AD_115"))
    unlisted = dispatch(129.0)  # made late in its confirm window: its job not listed yet
    acted = room.check(130.0, (ALICE,), unlisted)
    assert not [a for a in acted if isinstance(a, ReportFailed)] and not redispatches(acted)
    acted = room.check(135.0, (ALICE,), dispatch(129.0, JobInfo(P, JobReason.NO_CAPACITY)))
    assert redispatches(acted)


def test_a_retry_is_awaited_one_join_sla_past_the_capped_confirm_deadline() -> None:
    """Past the limit (the workers were full), confirm deadlines back off 32 join SLAs at most; a job
    LiveKit retries after the eighth re-dispatch is left to it one join SLA past that deadline, not past
    an uncapped 128 join SLAs."""
    retried = dispatch(1000.0, JobInfo(P, JobReason.RETRYING))
    assert job_signals.confirm_wait(SLA, 8) == SLA * 32
    assert job_signals.retry_until(retried, 100.0, SLA, 8) == 1000.0 + SLA * 32 + SLA
    assert job_signals.retry_until(dispatch(99.0, JobInfo(P, JobReason.RETRYING)), 100.0, SLA, 0) == 130.0

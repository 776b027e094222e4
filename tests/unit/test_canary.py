"""When a canary is due, what counts as a pass, how a failure is told apart by its dispatch's job
signals (workers full: `capacity`, not an outage), and how many failures in a row there are
(`workers.core.canary`)."""

from __future__ import annotations

import pytest

from workers.core.canary import (
    JOB_LISTING_LAG,
    CanaryPolicy,
    Outcome,
    agent_prefix,
    classify,
    counts_after,
    detail,
    due,
    empty_timeout,
    is_canary_room,
    look_again,
    room_name,
    streak,
    verdict,
    wait_seconds,
)
from workers.core.events import DispatchInfo, JobInfo, JobReason, JobStatus

POLICY = CanaryPolicy("voice", every=300.0, sla=15.0, failures=2)
P, F, X, R, C = Outcome.PASSED, Outcome.FAILED, Outcome.INTERRUPTED, Outcome.RUNNING, Outcome.CAPACITY


def listed(*jobs: JobInfo) -> DispatchInfo:
    return DispatchInfo("AD_1", "voice", jobs=jobs)


FULL = JobInfo(JobStatus.PENDING, JobReason.NO_CAPACITY)


def test_the_first_canary_is_due_at_once_then_every_period() -> None:
    assert due(POLICY, 1000.0, None)
    assert not due(POLICY, 1299.0, 1000.0)
    assert due(POLICY, 1300.0, 1000.0)


def test_while_the_incident_is_open_canaries_run_five_times_as_often() -> None:
    assert not due(POLICY, 1059.0, 1000.0, incident_open=True)
    assert due(POLICY, 1060.0, 1000.0, incident_open=True)


def test_a_failure_is_confirmed_at_the_open_incidents_pace() -> None:
    assert not due(POLICY, 1059.0, 1000.0, last_failed=True)
    assert due(POLICY, 1060.0, 1000.0, last_failed=True)


def test_after_a_restart_failures_count_once_its_grace_is_over() -> None:
    assert counts_after(POLICY, None) is None
    assert counts_after(POLICY, 1000.0) == 1020.0  # the default WARDEN_RESTART_GRACE_SECONDS


def test_after_a_restart_the_next_canary_runs_at_once_and_only_the_next() -> None:
    assert due(POLICY, 1001.0, 1000.0, incident_open=True, restarted_at=1000.5)
    assert not due(POLICY, 1002.0, 1001.0, incident_open=True, restarted_at=1000.5)  # that one ran


@pytest.mark.parametrize(("seconds", "outcome"), [(0.4, P), (15.0, P), (15.1, F), (None, F)])
def test_a_canary_passes_when_the_agent_came_within_its_sla(seconds: float | None, outcome: Outcome) -> None:
    assert verdict(POLICY, seconds) is outcome


@pytest.mark.parametrize(
    ("newest_first", "failures"),
    [
        ((), 0),
        ((F,), 1),
        ((F, F, P, F), 2),
        ((F, X, F), 2),
        ((R, F, F), 2),
        ((P, F, F), 0),
        ((C, C, C), 0),  # workers full, however long: no outage
        ((F, C, F), 2),  # a capacity run between two failures neither counts nor breaks the streak
        ((C, F, P, F), 1),
    ],
)
def test_failures_in_a_row_skip_runs_without_a_verdict(
    newest_first: tuple[Outcome, ...], failures: int
) -> None:
    assert streak(newest_first) == failures


def test_canary_rooms_are_named_for_their_agent_and_run() -> None:
    assert room_name("voice", 7) == "warden-canary-voice-7"
    assert is_canary_room("warden-canary-voice-7") and not is_canary_room("support-42")
    assert room_name("voice", 7).startswith(agent_prefix("voice"))


def test_a_canary_room_outlives_the_wait_for_its_agent() -> None:
    """livekit-server closes a room no person joined `empty_timeout` after its creation, agent or not."""
    for sla in (1.0, 15.0, 600.0):
        policy = CanaryPolicy("voice", every=300.0, sla=sla)
        assert wait_seconds(policy) == 2 * sla and empty_timeout(policy) > wait_seconds(policy) + 10


@pytest.mark.parametrize(
    ("dispatch", "outcome", "said"),
    [
        (listed(FULL), C, "LiveKit refused its job for want of capacity (JSR_NO_CAPACITY)"),
        (listed(), F, "did not come within 30 s; no worker took its job"),
        (listed(JobInfo(JobStatus.RUNNING, worker_id="AW_x")), F, "; worker AW_x took its job"),
        (listed(JobInfo(JobStatus.FAILED, worker_id="AW_y")), F, "; worker AW_y took its job"),
        (listed(JobInfo(JobStatus.PENDING, JobReason.RETRYING)), F, "did not come within 30 s"),
        (None, F, "did not come within 30 s"),  # not listed (LiveKit's trouble): judged as before
    ],
)
def test_an_agent_that_never_came_is_an_outage_unless_its_job_was_refused_for_capacity(
    dispatch: DispatchInfo | None, outcome: Outcome, said: str
) -> None:
    assert classify(POLICY, None, dispatch) is outcome
    assert said in detail(POLICY, None, dispatch)


def test_a_refusal_beside_a_served_job_is_no_capacity_failure() -> None:
    """One job refused, another of the same dispatch running (it was re-assigned): not full."""
    assert classify(POLICY, None, listed(FULL, JobInfo(JobStatus.RUNNING, worker_id="AW_x"))) is F


def test_an_agent_that_came_is_judged_by_its_time_whatever_its_jobs_say() -> None:
    assert classify(POLICY, 3.0, listed(FULL)) is P
    assert classify(POLICY, 20.0, listed(FULL)) is F
    assert detail(POLICY, 20.0, listed(FULL)) == "the agent came after 20.0 s, past its 15 s"
    assert detail(POLICY, 3.0, None) == "the agent came after 3.0 s"


def test_a_dispatch_listed_with_no_job_yet_is_looked_at_again_once_the_listing_lag_is_over() -> None:
    """A refused job is listed about 5 s after the dispatch, like any: a shorter wait cannot see it."""
    assert look_again(100.0, 104.0, listed()) == pytest.approx(JOB_LISTING_LAG - 4.0)
    assert look_again(100.0, 100.0 + JOB_LISTING_LAG, listed()) == 0.0
    assert look_again(100.0, 104.0, listed(FULL)) == 0.0  # its job is listed: nothing more to learn
    assert look_again(100.0, 104.0, None) == 0.0

"""When a canary is due, what counts as a pass, and how many failures in a row there are
(`workers.core.canary`)."""

from __future__ import annotations

import pytest

from workers.core.canary import (
    CanaryPolicy,
    Outcome,
    agent_prefix,
    counts_after,
    due,
    empty_timeout,
    is_canary_room,
    room_name,
    streak,
    verdict,
    wait_seconds,
)

POLICY = CanaryPolicy("voice", every=300.0, sla=15.0, failures=2)
P, F, X, R = Outcome.PASSED, Outcome.FAILED, Outcome.INTERRUPTED, Outcome.RUNNING


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
    [((), 0), ((F,), 1), ((F, F, P, F), 2), ((F, X, F), 2), ((R, F, F), 2), ((P, F, F), 0)],
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

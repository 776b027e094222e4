"""Observe mode's rules (`workers.core.observing`), pure: every pair of the incident table walked in
observe mode calls nothing and claims nothing, each restart or rollback it would have made a line of the
log marked not carried out, alerts only with WARDEN_OBSERVE_ALERTS and marked; which room decisions act;
and the setting, a bad value of which stops start-up naming it."""

from __future__ import annotations

from dataclasses import replace
from itertools import product

import pytest

from tests.support.settings import make_settings
from workers.core.alerts import Notify
from workers.core.errors import SettingsError
from workers.core.incident import (
    IncidentState,
    Note,
    Restart,
    Rollback,
    Signal,
    transition,
)
from workers.core.incident_samples import incident_samples
from workers.core.observing import OBSERVED_ALERT, carried_out, counted, unobserved, would
from workers.core.protecting import DispatchFallback, Protection, RemoveFallback, SendStatus, TransferCaller
from workers.core.room import (
    AgentView,
    CheckPresence,
    Dispatch,
    Evict,
    Expect,
    Reason,
    Redispatch,
    ReportBreach,
    ReportFailed,
    ScheduleDeadline,
)

CASES = [(s, g, what) for s, g in product(IncidentState, Signal) for what in incident_samples(s, g)]


@pytest.mark.parametrize(("state", "signal", "what"), CASES)
def test_an_incident_in_observe_mode_calls_nothing_and_claims_no_restart(
    state: IncidentState, signal: Signal, what: str
) -> None:
    incident, report, policy = incident_samples(state, signal)[what]
    acted = transition(incident, report, policy)
    observed = transition(incident, report, replace(policy, observe=True))
    assert observed.restart is None  # no claim: no cooldown, no lease of observe mode's
    assert not [d for d in observed.decisions if isinstance(d, Restart | Rollback | Notify)]
    if signal is not Signal.SWEPT or state is IncidentState.OPEN:
        assert observed.incident == acted.incident  # decided as act mode decides
        made = [d for d in acted.decisions if isinstance(d, Restart | Rollback)]
        not_made = [d for d in observed.decisions if isinstance(d, Note) and not d.carried_out]
        assert len([n for n in not_made if n.action != "alert"]) == len(made)
        assert counted(observed.decisions) == counted(acted.decisions)  # counted alike in both modes


@pytest.mark.parametrize(("state", "signal", "what"), CASES)
def test_alerts_in_observe_mode_go_out_only_with_observe_alerts_and_say_so(
    state: IncidentState, signal: Signal, what: str
) -> None:
    incident, report, policy = incident_samples(state, signal)[what]
    acted = [d for d in transition(incident, report, policy).decisions if isinstance(d, Notify)]
    loud = replace(policy, observe=True, observe_alerts=True)
    observed = [d for d in transition(incident, report, loud).decisions if isinstance(d, Notify)]
    if signal is not Signal.SWEPT or state is IncidentState.OPEN:
        assert observed == [replace(d, text=d.text + OBSERVED_ALERT) for d in acted]


def test_the_sweep_takes_nothing_up_in_observe_mode_so_would_restart_is_said_once() -> None:
    incident, report, policy = incident_samples(IncidentState.RESTARTING, Signal.SWEPT)["its caller died"]
    assert Restart(("cloud",)) in transition(incident, report, policy).decisions
    observed = transition(incident, report, replace(policy, observe=True))
    assert observed.incident == incident and observed.decisions == ()


def test_opening_in_observe_mode_says_would_restart_and_would_alert() -> None:
    incident, report, policy = incident_samples(IncidentState.NEW, Signal.OUTAGE)["deployment free"]
    step = transition(incident, report, replace(policy, observe=True))
    assert step.incident.state is IncidentState.RESTARTING
    assert [(d.action, d.outcome, d.carried_out) for d in step.decisions if isinstance(d, Note)] == [
        ("opened", "3 rooms missed their SLA within 60 s", True),
        ("restart", "would restart: LiveKit Cloud agent restart", False),
        ("alert", "would alert opened (slack, webhook): not sent, WARDEN_OBSERVE_ALERTS is off", False),
    ]


def test_the_room_decisions_that_act_are_not_carried_out_in_observe_mode() -> None:
    acting = [
        Redispatch(2, "notetaker", "", ("AD_1",)),
        Evict(2, "agent-1", "notetaker"),
        Dispatch("notetaker"),
        DispatchFallback("notetaker", "apology", "failed"),
        TransferCaller("notetaker", "failed"),
        RemoveFallback("notetaker", "apology"),
        SendStatus("notetaker", "recovering", 1.0),
    ]
    internal = [
        ScheduleDeadline(1, 15.0, Reason.JOIN, "notetaker"),
        CheckPresence(1, "notetaker"),
        Expect("notetaker", "dispatch"),
        ReportBreach("join", "notetaker"),
        ReportFailed("used up", 2, "notetaker"),
    ]
    assert [carried_out(a, True) for a in acting] == [False] * len(acting)
    assert all(carried_out(a, True) for a in internal)
    assert all(carried_out(a, False) for a in acting + internal)
    assert [would(type(a).__name__) for a in acting[:3]] == [
        "would re-dispatch",
        "would remove",
        "would dispatch",
    ]


def test_warden_mode_is_act_or_observe_and_a_bad_value_names_the_variable() -> None:
    assert make_settings().warden_mode == "act" and not make_settings().rules().observe
    observing = make_settings(warden_mode=" Observe ")
    assert observing.observing and observing.rules().observe and not observing.warden_observe_alerts
    with pytest.raises(SettingsError, match=r"^WARDEN_MODE: must be act or observe$"):
        make_settings(warden_mode="dry-run")
    with pytest.raises(SettingsError, match="WARDEN_OBSERVE_ALERTS"):
        make_settings(warden_observe_alerts="perhaps")


def test_act_taking_over_forgets_what_observe_mode_decided_and_did_not_make() -> None:
    observed = AgentView(
        "notetaker",
        outage_at=10.0,
        fallback=Protection.FALLBACK_AGENT,
        fallback_reason="failed",
        fallback_to="apology",
        fallback_agent="apology",
        told="fallback",
        told_at=12.0,
        spared=("notetaker-0",),
    )
    assert unobserved(observed) == AgentView("notetaker")

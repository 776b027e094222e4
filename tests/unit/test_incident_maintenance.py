"""Maintenance windows through the pure incident machine (rule 12 of `workers.core.incident`), as the
store drives it: every report says which window covers the agent now, read per decision."""

from __future__ import annotations

from typing import Any

from workers.core.alerts import SLACK, SLACK_STEPS, AlertRoute, Notify
from workers.core.incident import (
    CLOUD,
    Decision,
    DeploymentRestart,
    FreshStarts,
    Incident,
    IncidentPolicy,
    IncidentState,
    Note,
    Report,
    Restart,
    Rollback,
    Signal,
    transition,
)

S, G = IncidentState, Signal
WEBHOOK = AlertRoute("webhook", frozenset({"opened", "restarted", "followup", "restart-failed", "resolved"}))
POLICY = IncidentPolicy(
    cloud=True,
    rollback=True,
    cooldown=300.0,
    lease=60.0,
    restart_grace=20.0,
    doing="LiveKit Cloud agent restart",
    routes=(AlertRoute(SLACK, SLACK_STEPS), WEBHOOK),
)
WINDOW = "maintenance window 1 until 10:30 UTC, by alice: deploying v2"


class Agent:
    """One agent's incidents and its deployment's restart, as the store keeps them."""

    def __init__(self) -> None:
        self.incident = Incident("IN_1", "notetaker")
        self.restart = DeploymentRestart()
        self.decided: list[Decision] = []

    def report(self, signal: Signal, at: float, window: str = "", **facts: Any) -> tuple[Decision, ...]:
        report = Report(signal, at, restart=self.restart, maintenance=window, **facts)
        step = transition(self.incident, report, POLICY)
        self.incident = step.incident
        if step.restart is not None:
            self.restart = step.restart
        self.decided += step.decisions
        return step.decisions

    def alerts(self) -> list[str]:
        return [f"{d.route} {d.step}" for d in self.decided if isinstance(d, Notify)]

    def calls(self) -> list[Decision]:
        return [d for d in self.decided if isinstance(d, Restart | Rollback)]

    def notes(self) -> list[str]:
        return [f"{d.action}: {d.outcome}" for d in self.decided if isinstance(d, Note)]


def test_an_outage_in_a_window_is_recorded_in_maintenance_and_restarts_nothing_tells_no_one() -> None:
    a = Agent()
    a.report(G.OUTAGE, 100.0, WINDOW, reason="3 rooms missed their SLA within 60 s", rooms=3)
    a.report(G.ROOM_FAILED, 110.0, WINDOW, reason="room call-1: refused", room="call-1", waiting=3)
    a.report(G.SWEPT, 400.0, WINDOW)  # long past any cooldown: still nothing
    assert a.incident.state is S.OPEN and a.incident.maintenance
    assert a.calls() == [] and a.alerts() == []
    assert a.notes() == [
        "opened: 3 rooms missed their SLA within 60 s",
        f"maintenance: {WINDOW}: no restart, rollback or deploy hook, no alert",
    ]


def test_the_window_ending_with_the_outage_still_there_brings_one_restart_and_the_alerts() -> None:
    a = Agent()
    a.report(G.OUTAGE, 100.0, WINDOW, reason="3 rooms missed their SLA within 60 s", rooms=3)
    assert a.report(G.SWEPT, 105.0, WINDOW) == ()
    ended = a.report(G.SWEPT, 110.0, "", waiting=3)  # the sweep finds no window any more
    assert Restart((CLOUD,)) in ended and a.incident.state is S.RESTARTING and not a.incident.maintenance
    assert a.alerts() == ["slack opened", "webhook opened"]
    assert a.report(G.SWEPT, 115.0, "", waiting=3) == ()  # one restart, not one a sweep
    a.restart = a.restart.outcome(CLOUD, True, 120.0)
    a.report(G.RESTART_LANDED, 120.0, leg=CLOUD)
    a.report(G.RECOVERED, 150.0, rooms=3)
    assert a.calls() == [Restart((CLOUD,))] and a.incident.state is S.RESOLVED
    assert a.alerts() == [
        "slack opened",
        "webhook opened",
        "webhook restarted",
        "slack resolved",
        "webhook resolved",
    ]


def test_an_outage_ending_inside_the_window_is_resolved_quietly() -> None:
    a = Agent()
    a.report(G.OUTAGE, 100.0, WINDOW, reason="3 rooms missed their SLA within 60 s", rooms=3)
    a.report(G.RECOVERED, 140.0, WINDOW, rooms=3)
    assert a.incident.state is S.RESOLVED and a.alerts() == [] and a.calls() == []
    assert a.report(G.SWEPT, 200.0, "") == ()  # resolved: the window's end changes nothing
    assert a.notes()[-1] == "resolved: 3 room(s) recovered in 40 s"


def test_a_window_started_during_an_incident_stops_its_follow_up_and_rollback_until_it_ends() -> None:
    a = Agent()
    a.report(G.OUTAGE, 100.0, reason="3 rooms missed their SLA within 60 s", rooms=3)
    a.restart = a.restart.outcome(CLOUD, True, 101.0)
    a.report(G.RESTART_LANDED, 101.0, leg=CLOUD)
    told = len(a.alerts())
    # the operator starts a window; the next report finds it
    assert a.report(G.ROOM_FAILED, 130.0, WINDOW, room="call-2", waiting=2) == (
        Note("maintenance", f"{WINDOW}: no restart, rollback or deploy hook, no alert"),
    )
    assert a.incident.maintenance and len(a.alerts()) == told and a.calls() == [Restart((CLOUD,))]
    # ended within the cooldown: said again, the restart waits out the cooldown, then comes once
    a.report(G.SWEPT, 200.0, "", waiting=2)
    assert a.alerts()[told:] == ["slack opened", "webhook opened"] and a.incident.state is S.OPEN
    assert a.calls() == [Restart((CLOUD,))]
    a.report(G.SWEPT, 402.0, "", waiting=2)
    assert a.calls() == [Restart((CLOUD,)), Restart((CLOUD,))]


def test_rooms_keep_their_fresh_starts_in_maintenance() -> None:
    """A restart that landed before the window still re-checks the waiting rooms; only its alert is held."""
    a = Agent()
    a.report(G.OUTAGE, 100.0, reason="3 rooms missed their SLA within 60 s", rooms=3)
    a.restart = a.restart.outcome(CLOUD, True, 101.0)
    landed = a.report(G.RESTART_LANDED, 101.0, WINDOW, leg=CLOUD)
    assert FreshStarts(None, "20 s after") in landed
    assert not any(isinstance(d, Notify) for d in landed)

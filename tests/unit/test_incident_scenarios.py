"""Whole incident lives through the pure machine, as the store and the escalation package drive it: the
deployment's restart is one value shared by its incidents (read under its lock, written back when a
step claims it), and its outcome reaches every open incident of it."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from workers.core.alerts import SLACK, SLACK_STEPS, AlertRoute, Notify
from workers.core.incident import (
    CLOUD,
    HOOK,
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
    WatchComeback,
    transition,
)

S, G = IncidentState, Signal
WEBHOOK = AlertRoute("webhook", frozenset({"opened", "restarted", "followup", "restart-failed", "resolved"}))
POLICY = IncidentPolicy(
    cloud=True,
    cooldown=300.0,
    lease=60.0,
    restart_grace=20.0,
    doing="LiveKit Cloud agent restart",
    routes=(AlertRoute(SLACK, SLACK_STEPS), WEBHOOK),
)


@dataclass
class Deployment:
    """One deployment and the incidents of the agents it runs, as the store keeps them."""

    policy: IncidentPolicy = POLICY
    restart: DeploymentRestart = field(default_factory=DeploymentRestart)
    incidents: dict[str, Incident] = field(default_factory=dict)
    decided: list[tuple[str, Decision]] = field(default_factory=list)

    def report(self, agent: str, signal: Signal, at: float, **facts: Any) -> tuple[Decision, ...]:
        """`signal` for the agent's incident (opened if it has none open), with the deployment's restart."""
        incident = self.incidents.get(agent) or Incident(f"IN_{agent}", agent)
        step = transition(incident, Report(signal, at, restart=self.restart, **facts), self.policy)
        self.incidents[agent] = step.incident
        if step.restart is not None:
            self.restart = step.restart
        self.decided += [(agent, d) for d in step.decisions]
        return step.decisions

    def outcome(self, leg: str, landed: bool, at: float) -> None:
        """One leg's outcome; once the restart has its outcome, every open incident of it hears it."""
        before, self.restart = self.restart, self.restart.outcome(leg, landed, at)
        if before.under_way and not self.restart.under_way:
            signal = G.RESTART_LANDED if self.restart.landed_at is not None else G.RESTART_FAILED
            for agent in list(self.incidents):
                self.report(agent, signal, at, leg=leg)

    def alerts(self, route: str) -> list[str]:
        return [d.step for _, d in self.decided if isinstance(d, Notify) and d.route == route]

    def restarts(self) -> list[Restart]:
        return [d for _, d in self.decided if isinstance(d, Restart)]


def test_a_dormant_cloud_agent_restarted_once_back_at_once_and_resolved() -> None:
    d = Deployment()
    assert Restart((CLOUD,)) in d.report("notetaker", G.OUTAGE, 100.0, reason="3 rooms", rooms=3)
    for at in (100.2, 100.4):  # more breaches of the same outage, more failed rooms: nothing new
        assert d.report("notetaker", G.OUTAGE, at, reason="4 rooms", rooms=4) == ()
        assert d.report("notetaker", G.ROOM_FAILED, at, room="call-1") == ()
    d.outcome(CLOUD, landed=True, at=101.0)
    assert [type(x) for _, x in d.decided if not isinstance(x, Notify)][-2:] == [FreshStarts, WatchComeback]
    assert d.report("notetaker", G.RUNNING_AGAIN, 104.0, after=3.0) == (
        FreshStarts(0.0, "at once, its deployment running 3.0 s after"),
    )
    d.report("notetaker", G.RECOVERED, 130.0, rooms=8)
    assert d.incidents["notetaker"].state is S.RESOLVED and d.restarts() == [Restart((CLOUD,))]
    assert d.alerts(SLACK) == ["opened", "resolved"]  # people hear of the outage and of its end
    assert d.alerts("webhook") == ["opened", "restarted", "resolved"]
    assert d.report("notetaker", G.ROOM_FAILED, 140.0, room="call-1") == ()  # resolved: changes no more


def test_two_agents_on_one_deployment_share_one_restart_and_each_gets_its_rooms_back() -> None:
    """The demo's two incidents opened in the same millisecond: one RestartAgent, not one each."""
    d = Deployment()
    d.report("notetaker", G.OUTAGE, 100.000, reason="3 rooms", rooms=3)
    d.report("demo-agent", G.OUTAGE, 100.006, reason="3 rooms", rooms=3)
    assert d.restarts() == [Restart((CLOUD,))]
    assert {a: i.state for a, i in d.incidents.items()} == {
        "notetaker": S.RESTARTING,
        "demo-agent": S.RESTARTING,
    }
    d.outcome(CLOUD, landed=True, at=101.0)
    fresh = [agent for agent, x in d.decided if isinstance(x, FreshStarts)]
    assert sorted(fresh) == ["demo-agent", "notetaker"]  # each incident's own rooms are re-checked
    d.report("demo-agent", G.RECOVERED, 120.0, rooms=3)
    assert d.incidents["notetaker"].state is S.RESTARTED  # each resolves when its own agent is back
    d.report("notetaker", G.RECOVERED, 125.0, rooms=3)
    assert {i.state for i in d.incidents.values()} == {S.RESOLVED}


def test_a_restart_of_both_legs_fails_only_once_neither_can_land() -> None:
    d = Deployment(policy=replace(POLICY, hook=True, doing="LiveKit Cloud agent restart and deploy hook"))
    assert Restart((CLOUD, HOOK)) in d.report("notetaker", G.ROOM_FAILED, 100.0, room="call-1")
    d.outcome(CLOUD, landed=False, at=101.0)  # refused for good; the hook is still being tried
    assert d.incidents["notetaker"].state is S.RESTARTING and d.alerts(SLACK) == ["opened"]
    d.outcome(HOOK, landed=False, at=160.0)  # given up
    assert d.incidents["notetaker"].state is S.NOT_RESTARTED
    assert d.alerts(SLACK) == ["opened", "restart-failed"]
    d.outcome(HOOK, landed=True, at=170.0)  # a restart failed stays failed: its outcome is given
    assert d.incidents["notetaker"].state is S.NOT_RESTARTED


def test_a_hook_landing_after_the_cloud_refused_is_the_restart() -> None:
    d = Deployment(policy=replace(POLICY, hook=True))
    d.report("notetaker", G.OUTAGE, 100.0, rooms=3)
    d.outcome(CLOUD, landed=False, at=101.0)
    d.outcome(HOOK, landed=True, at=102.0)
    assert d.incidents["notetaker"].state is S.RESTARTED and d.incidents["notetaker"].restarted_at == 102.0
    assert WatchComeback() not in [x for _, x in d.decided]  # a hook says nothing of when workers are up


def test_a_restart_that_did_not_help_is_followed_up_once_and_rolled_back_once_never_a_loop() -> None:
    d = Deployment(policy=replace(POLICY, rollback=True))
    d.report("notetaker", G.ROOM_FAILED, 100.0, room="call-1")
    d.outcome(CLOUD, landed=True, at=100.0)
    assert d.report("notetaker", G.ROOM_FAILED, 100.0, room="call-1") == ()  # the failure that brought it
    d.report("notetaker", G.ROOM_FAILED, 125.0, room="call-2", waiting=2)
    assert d.incidents["notetaker"].state is S.ROLLING_BACK
    assert d.report("notetaker", G.SWEPT, 150.0) == ()  # the rollback's caller is within its lease
    assert d.report("notetaker", G.SWEPT, 190.0) == (Rollback(),)  # it died: claimed and called again
    assert d.report("notetaker", G.SWEPT, 200.0) == ()
    d.report("notetaker", G.ROLLBACK_DONE, 201.0, landed=True)
    for at in (230.0, 260.0):
        d.report("notetaker", G.ROOM_FAILED, at, room="call-3")
        d.report("notetaker", G.OUTAGE, at, rooms=3)
    assert d.alerts(SLACK) == ["opened", "followup"]
    assert [x for _, x in d.decided if isinstance(x, Rollback)] == [Rollback(), Rollback()]
    assert d.restarts() == [Restart((CLOUD,))]


def test_a_restart_whose_caller_died_is_claimed_again_after_its_lease_and_called_once() -> None:
    d = Deployment()
    d.report("notetaker", G.OUTAGE, 100.0, rooms=3)  # the caller dies: no outcome ever comes
    assert d.report("notetaker", G.SWEPT, 150.0) == ()
    assert d.report("notetaker", G.SWEPT, 161.0) == (Restart((CLOUD,)),)
    assert d.report("notetaker", G.SWEPT, 170.0) == ()  # claimed again at 161: its lease runs
    d.outcome(CLOUD, landed=True, at=171.0)
    assert d.restarts() == [Restart((CLOUD,))] * 2 and d.incidents["notetaker"].state is S.RESTARTED


def test_the_cooldown_is_the_deployments_a_restart_landed_just_now_is_shared() -> None:
    d = Deployment()
    d.report("notetaker", G.OUTAGE, 100.0, rooms=3)
    d.outcome(CLOUD, landed=True, at=101.0)
    d.report("demo-agent", G.OUTAGE, 101.005, rooms=3)  # another agent of it, the restart just landed
    assert d.restarts() == [Restart((CLOUD,))] and d.incidents["demo-agent"].state is S.RESTARTED
    assert FreshStarts(None, "20 s after") in [x for agent, x in d.decided if agent == "demo-agent"]
    d.report("demo-agent", G.RECOVERED, 130.0, rooms=3)
    d.incidents.clear()
    d.report("demo-agent", G.OUTAGE, 200.0, rooms=3)  # a new outage, within the cooldown: it waits
    assert d.incidents["demo-agent"].state is S.OPEN and len(d.restarts()) == 1
    assert d.report("demo-agent", G.SWEPT, 401.0) == (Restart((CLOUD,)),)  # the cooldown is over
    assert len(d.restarts()) == 2
    d.outcome(CLOUD, landed=False, at=402.0)
    d.incidents.clear()
    d.report("notetaker", G.OUTAGE, 500.0, rooms=3)  # a failed restart's cooldown is waited out
    assert d.incidents["notetaker"].state is S.OPEN and len(d.restarts()) == 2
    assert d.report("notetaker", G.SWEPT, 650.0) == ()
    assert d.report("notetaker", G.SWEPT, 702.0) == (Restart((CLOUD,)),)


ACKED = replace(
    POLICY,
    routes=(
        AlertRoute(SLACK, SLACK_STEPS),
        AlertRoute("pagerduty", frozenset({"opened", "acknowledged", "resolved"})),
    ),
)


def test_an_acknowledged_incident_sends_its_acknowledgement_once_and_no_follow_up_after_it() -> None:
    """Issue 28: alice acknowledges the outage; the restart does not help, and nobody is paged again
    (the follow-up is a line of the log), but the resolution still closes PagerDuty's alert."""
    d = Deployment(policy=ACKED)
    d.report("notetaker", G.OUTAGE, 100.0, reason="3 rooms", rooms=3)
    d.outcome(CLOUD, landed=True, at=101.0)
    d.report("notetaker", G.ACKNOWLEDGED, 105.0, by="alice")
    assert d.report("notetaker", G.ACKNOWLEDGED, 106.0, by="bob") == ()  # once, by the first
    incident = d.incidents["notetaker"]
    assert (incident.acknowledged_at, incident.acknowledged_by) == (105.0, "alice")
    d.report("notetaker", G.ROOM_FAILED, 130.0, room="call-1", waiting=1)
    assert d.incidents["notetaker"].state is S.FOLLOWED_UP
    d.report("notetaker", G.RECOVERED, 150.0, rooms=3)
    assert d.alerts("pagerduty") == ["opened", "acknowledged", "resolved"]
    assert d.alerts(SLACK) == ["opened", "resolved"]  # no follow-up: a person is on it
    lines = [(x.action, x.outcome) for _, x in d.decided if isinstance(x, Note)]
    assert ("acknowledged", "by alice") in lines
    assert ("follow-up", "no alert: acknowledged by alice") in lines


def test_an_acknowledgement_after_the_resolution_changes_nothing() -> None:
    d = Deployment(policy=ACKED)
    d.report("notetaker", G.OUTAGE, 100.0, reason="3 rooms", rooms=3)
    d.report("notetaker", G.RECOVERED, 110.0, rooms=3)
    assert d.report("notetaker", G.ACKNOWLEDGED, 120.0, by="alice") == ()
    assert d.incidents["notetaker"].acknowledged_at is None and "acknowledged" not in d.alerts("pagerduty")


def test_a_restart_asked_for_by_hand_waits_out_the_deployments_cooldown_then_is_claimed_once() -> None:
    d = Deployment()
    d.report("notetaker", G.OUTAGE, 100.0, reason="3 rooms", rooms=3)
    d.outcome(CLOUD, landed=True, at=101.0)
    refused = d.report("notetaker", G.RESTART_ASKED, 200.0, by="alice")
    assert refused == (Note("restart", "asked by alice: refused: its deployment's cooldown runs 200 s more"),)
    assert d.report("notetaker", G.RESTART_ASKED, 401.0, by="alice") == (
        Note("restart", "asked by alice"),
        Restart((CLOUD,)),
    )
    assert d.incidents["notetaker"].state is S.RESTARTING and d.restart == DeploymentRestart(401.0, (CLOUD,))
    assert d.report("notetaker", G.RESTART_ASKED, 402.0, by="bob") == (
        Note("restart", "asked by bob: refused: its restart is under way"),
    )
    d.outcome(CLOUD, landed=True, at=403.0)
    assert d.incidents["notetaker"].state is S.RESTARTED and len(d.restarts()) == 2

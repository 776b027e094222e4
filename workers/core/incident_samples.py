"""Sample incidents and reports for the incident machine: an incident in every state, and for every
signal the reports that tell its rules apart (the deployment's restart free, under way, its caller dead,
landed or failed lately...). The README's incident diagram is drawn from them (`workers.core.diagram`)
and the table test walks them (`tests/unit/test_incident_table.py`), so both see every rule at work.

Each open incident also has its sample "in maintenance" (marked, rule 12) beside the first of its
samples, and the window's start and end theirs.

Times: the incident opened at 0, its restart landed at 50, its rollback was claimed at 60; the reports
come at 100 (80 while a caller's lease still runs). The lease is 30 s, the restart grace 20 s and the
cooldown 60 s.
"""

from __future__ import annotations

from dataclasses import replace

from workers.core.alerts import SLACK, SLACK_STEPS, AlertRoute
from workers.core.incident import (
    CAPACITY,
    CLOUD,
    HOOK,
    DeploymentRestart,
    Incident,
    IncidentPolicy,
    IncidentState,
    Report,
    Signal,
)

AT = 100.0
EVERY_STEP = frozenset({"opened", "restarted", "followup", "restart-failed", "acknowledged", "resolved"})
POLICY = IncidentPolicy(
    cloud=True,
    rollback=True,
    cooldown=60.0,
    lease=30.0,
    restart_grace=20.0,
    doing="LiveKit Cloud agent restart",
    routes=(AlertRoute(SLACK, SLACK_STEPS), AlertRoute("webhook", EVERY_STEP)),
)
NOTHING_TO_RESTART = replace(POLICY, cloud=False, rollback=False, doing="")

S = IncidentState
_OPENED = Incident("IN_sample", "notetaker", S.OPEN, "3 rooms missed their SLA within 60 s", 0.0)
_RESTARTED = replace(_OPENED, state=S.RESTARTED, restarted_at=50.0)
SAMPLE_INCIDENTS: dict[IncidentState, Incident] = {
    S.NEW: Incident("IN_sample", "notetaker"),
    S.OPEN: _OPENED,
    S.RESTARTING: replace(_OPENED, state=S.RESTARTING),
    S.RESTARTED: _RESTARTED,
    S.NOT_RESTARTED: replace(_OPENED, state=S.NOT_RESTARTED),
    S.ROLLING_BACK: replace(_RESTARTED, state=S.ROLLING_BACK, rollback_claimed_at=60.0),
    S.FOLLOWED_UP: replace(_RESTARTED, state=S.FOLLOWED_UP),
    S.RESOLVED: replace(_RESTARTED, state=S.RESOLVED),
}

# The deployment's restart as a report finds it, by what it says.
_DEPLOYMENT: dict[str, DeploymentRestart] = {
    "deployment free": DeploymentRestart(),
    "restart under way": DeploymentRestart(claimed_at=90.0, pending=(CLOUD,)),
    "its caller died": DeploymentRestart(claimed_at=10.0, pending=(CLOUD,)),
    "landed just now": DeploymentRestart(claimed_at=90.0, landed_at=91.0),
    "landed lately": DeploymentRestart(claimed_at=70.0, landed_at=71.0),
    "failed lately": DeploymentRestart(claimed_at=90.0),
}
# What the sweep finds, by what it says: (when it looks, the deployment's restart). An open incident
# (waiting out a failed restart's cooldown) can claim one again; a restarting one catches up.
_SWEPT: dict[str, tuple[float, DeploymentRestart]] = {
    "restart under way": (80.0, DeploymentRestart(claimed_at=70.0, pending=(CLOUD,))),
    "its caller died": (AT, DeploymentRestart(claimed_at=10.0, pending=(CLOUD,))),
    "restart landed": (AT, DeploymentRestart(claimed_at=90.0, landed_at=95.0)),
    "restart failed": (AT, DeploymentRestart(claimed_at=90.0)),
    "cooldown over": (AT, DeploymentRestart(claimed_at=10.0)),
}
_ROLLBACK_SWEPT = {"rollback under way": 80.0, "its caller died": AT}
# The deployment's restart as an operator's request for one finds it, by what it says.
_ASKED: dict[str, DeploymentRestart] = {
    "deployment free": DeploymentRestart(),
    "restart under way": DeploymentRestart(claimed_at=90.0, pending=(CLOUD,)),
    "in the cooldown": DeploymentRestart(claimed_at=70.0, landed_at=71.0),
    "cooldown over": DeploymentRestart(claimed_at=10.0, landed_at=11.0),
}
OPERATOR = "alice"

_CANARY = "canary: 2 canaries in a row failed (the agent did not come within 15 s)"
_FULL = "room call-1: LiveKit refused its job for want of capacity (JSR_NO_CAPACITY)"

WINDOW = "maintenance window 7 until 12:30 UTC, by alice: deploying v2"

Sample = tuple[Incident, Report, IncidentPolicy]


def incident_samples(state: IncidentState, signal: Signal) -> dict[str, Sample]:
    """Representative reports of `signal` for the sample incident in `state`, labelled by what they say
    where the state's rule tells them apart (one sample where it does not); an open incident's first
    sample again in maintenance."""
    if signal in (Signal.MAINTENANCE_STARTED, Signal.MAINTENANCE_ENDED):
        return _window_samples(state, signal)
    found = _samples(state, signal)
    if state in (S.NEW, S.RESOLVED):
        return found
    incident, report, policy = next(iter(found.values()))
    quiet = (replace(incident, maintenance=True), replace(report, maintenance=WINDOW), policy)
    return found | {"in maintenance": quiet}


def _window_samples(state: IncidentState, signal: Signal) -> dict[str, Sample]:
    """A window's start (the incident marked already, or not) and end (rooms still waiting, with the
    deployment free or its cooldown running, or none waiting; the incident not marked)."""
    incident = SAMPLE_INCIDENTS[state]
    marked = replace(incident, maintenance=True)
    if signal is Signal.MAINTENANCE_STARTED:
        report = Report(signal, AT, maintenance=WINDOW)
        if state in (S.NEW, S.RESOLVED):
            return {"": (incident, report, POLICY)}
        return {"": (incident, report, POLICY), "already marked": (marked, report, POLICY)}
    report = Report(signal, AT, rooms=3, waiting=2)
    if state in (S.NEW, S.RESOLVED):
        return {"": (incident, report, POLICY)}
    return {
        "rooms wait": (marked, report, POLICY),
        "rooms wait, cooldown": (marked, replace(report, restart=_DEPLOYMENT["landed lately"]), POLICY),
        "no room waits": (marked, replace(report, waiting=0), POLICY),
        "not marked": (incident, report, POLICY),
    }


def _samples(state: IncidentState, signal: Signal) -> dict[str, Sample]:
    incident = SAMPLE_INCIDENTS[state]

    def sample(report: Report, policy: IncidentPolicy = POLICY) -> Sample:
        return (incident, report, policy)

    marked = replace(incident, canary_failing=True)
    full = replace(incident, kind=CAPACITY)
    acked = replace(incident, acknowledged_at=90.0, acknowledged_by=OPERATOR)
    operating = state not in (S.NEW, S.RESOLVED)
    if signal is Signal.ACKNOWLEDGED:
        report = Report(signal, AT, by=OPERATOR)
        return (
            {"": sample(report), "already acknowledged": (acked, report, POLICY)}
            if operating
            else {"": sample(report)}
        )
    if signal is Signal.RESTART_ASKED:
        report = Report(signal, AT, by=OPERATOR)
        if state in (S.NEW, S.RESOLVED, S.RESTARTING, S.ROLLING_BACK):
            return {"": sample(report)}
        found = {what: sample(replace(report, restart=d)) for what, d in _ASKED.items()}
        return found | {"nothing to restart": sample(report, NOTHING_TO_RESTART)}
    if signal is Signal.HANDED_OVER and operating:  # an alert went out on the webhook alone, or none
        report = Report(signal, AT, rooms=2, alerted=("webhook",))
        return {"alerted": sample(report), "nothing sent": sample(replace(report, alerted=()))}
    if signal is Signal.CAPACITY:
        report = Report(signal, AT, reason=_FULL, rooms=1, room="call-1")
        if state in (S.NEW, S.RESOLVED):
            return {"": sample(report)}
        return {"outage incident": sample(report), "capacity incident": (full, report, POLICY)}
    if signal is Signal.CANARY_PASSED and state not in (S.NEW, S.RESOLVED):
        report = Report(signal, AT, rooms=3)
        return {
            "no room waits": (marked, report, POLICY),
            "rooms wait": (marked, replace(report, waiting=2), POLICY),
            "not marked, rooms wait": sample(replace(report, waiting=2)),
        }
    if signal is Signal.CANARY_FAILED and state not in (S.NEW, S.OPEN, S.RESTARTED, S.RESOLVED):
        report = Report(signal, AT, reason=_CANARY, waiting=2, room="warden-canary-notetaker-7")
        return {"": sample(report), "already marked": (marked, report, POLICY)}
    if signal is Signal.RECOVERED and state not in (S.NEW, S.RESOLVED):
        report = Report(signal, AT, rooms=3)
        return {"": sample(report), "canary failing": (marked, report, POLICY)}
    if signal in (Signal.OUTAGE, Signal.ROOM_FAILED, Signal.CANARY_FAILED):
        reason = {
            Signal.OUTAGE: "3 rooms missed their SLA within 60 s",
            Signal.ROOM_FAILED: "room call-1: refused",
            Signal.CANARY_FAILED: _CANARY,
        }[signal]
        report = Report(signal, AT, reason=reason, rooms=3, waiting=2, room="call-1")
        if state in (S.NEW, S.OPEN):
            found = {what: sample(replace(report, restart=d)) for what, d in _DEPLOYMENT.items()}
            found |= {"nothing to restart": sample(report, NOTHING_TO_RESTART)}
            return found | ({"workers full": (full, report, POLICY)} if state is S.OPEN else {})
        if signal is Signal.OUTAGE or state is S.RESOLVED:
            return {"": sample(report)}
        return {
            "after the restart": sample(report),
            "acknowledged": (acked, report, POLICY),
            "no rollback": sample(report, replace(POLICY, rollback=False)),
            "in the same breath": sample(replace(report, at=50.0)),  # the failure that brought the restart
            "workers full": (full, report, POLICY),
        }
    if signal is Signal.SWEPT:
        if state is S.ROLLING_BACK:
            return {what: sample(Report(signal, at)) for what, at in _ROLLBACK_SWEPT.items()}
        if state not in (S.OPEN, S.RESTARTING):
            return {"": sample(Report(signal, AT))}
        return {
            what: sample(Report(signal, at, restart=d))
            for what, (at, d) in _SWEPT.items()
            if state is S.OPEN or what != "cooldown over"
        }
    if signal is Signal.RESTART_LANDED:
        return {
            "Cloud restart": sample(Report(signal, AT, leg=CLOUD)),
            "deploy hook": sample(Report(signal, AT, leg=HOOK)),
        }
    if signal is Signal.ROLLBACK_DONE:
        return {
            "landed": sample(Report(signal, AT, landed=True)),
            "refused": sample(Report(signal, AT, landed=False)),
        }
    return {"": sample(Report(signal, AT, rooms=3, after=3.5))}

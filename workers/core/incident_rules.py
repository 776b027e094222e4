"""The incident machine's rules for an outage (`workers.core.incident`, rules 1 to 7): opening, the
deployment's restart claimed, shared or taken up, its outcome, the follow-up and its rollback, and the
resolution. Pure; one function per cell kind of the `INCIDENT` table."""

from __future__ import annotations

from dataclasses import replace

from workers.core import alerts
from workers.core.incident_decisions import (
    Decision,
    FreshStarts,
    Note,
    Resolve,
    Restart,
    Rollback,
    WatchComeback,
)
from workers.core.incident_operator import followup_alerts
from workers.core.incident_values import (
    CAPACITY,
    CLOUD,
    DeploymentRestart,
    Incident,
    IncidentPolicy,
    IncidentState,
    Report,
    Signal,
    Step,
    tell,
)
from workers.core.personal import mask_phone

S = IncidentState


def ignore(incident: Incident, report: Report, policy: IncidentPolicy) -> Step:
    """The pair changes nothing."""
    return Step(incident)


def opened(incident: Incident, report: Report, policy: IncidentPolicy) -> Step:
    """The first report of an outage: opened, said once, and its deployment's restart claimed."""
    born = replace(incident, state=S.OPEN, reason=report.reason, opened_at=report.at)
    doing = alerts.trying(policy.doing)
    text = alerts.opened(born.id, born.agent_name, report.reason, report.rooms, doing)
    said: tuple[Decision, ...] = (
        Note("opened", report.reason),
        *tell(born, policy, "opened", text),
    )
    claimed = claim(born, report, policy)
    return replace(claimed, decisions=said + claimed.decisions)


def claim(incident: Incident, report: Report, policy: IncidentPolicy) -> Step:
    """Claim the deployment's restart, share the one under way or landed just now, or wait out the
    cooldown of one claimed lately."""
    if incident.kind == CAPACITY or incident.maintenance:
        return Step(incident)  # a restart adds no capacity; none in maintenance
    if not policy.legs:
        note = Note("restart", "not attempted: no Cloud agent and no deploy hook configured")
        return Step(replace(incident, state=S.NOT_RESTARTED), (note,))
    last, at = report.restart, report.at
    if last.under_way:
        if _caller_died(last, at, policy):
            return _take_up(incident, last, at)
        note = Note("restart", "its deployment's restart is under way for another incident: shared")
        return Step(replace(incident, state=S.RESTARTING), (note,))
    if last.landed_at is not None and last.landed_at > at - policy.restart_grace:
        return landed(incident, replace(report, leg=""), policy)
    if last.claimed_at is not None and last.claimed_at > at - policy.cooldown:
        return Step(incident)
    claimed = DeploymentRestart(claimed_at=at, pending=policy.legs)
    return Step(replace(incident, state=S.RESTARTING), (Restart(policy.legs),), claimed)


def _caller_died(last: DeploymentRestart, at: float, policy: IncidentPolicy) -> bool:
    """A Cloud restart claimed a lease ago with no outcome: its caller died before recording one."""
    return CLOUD in last.pending and last.claimed_at is not None and last.claimed_at < at - policy.lease


def _take_up(incident: Incident, last: DeploymentRestart, at: float) -> Step:
    """Claim the restart a dead caller left again; only the Cloud leg is called again."""
    return Step(replace(incident, state=S.RESTARTING), (Restart((CLOUD,)),), replace(last, claimed_at=at))


def catch_up(incident: Incident, report: Report, policy: IncidentPolicy) -> Step:
    """The sweep: the deployment's outcome, if this incident missed it; its restart claimed again if
    its caller died."""
    last = report.restart
    if last.landed_at is not None:
        return landed(incident, replace(report, at=last.landed_at, leg=""), policy)
    if last.failed:
        return failed(incident, report, policy)
    if last.under_way and _caller_died(last, report.at, policy) and not incident.maintenance:
        return _take_up(incident, last, report.at)
    return Step(incident)


def landed(incident: Incident, report: Report, policy: IncidentPolicy) -> Step:
    """A restart landed: the waiting rooms get their fresh start; a Cloud deployment is watched."""
    watch = report.leg == CLOUD
    text = alerts.restarted(incident.id, incident.agent_name, policy.restart_grace, sooner=watch)
    decisions: tuple[Decision, ...] = (
        FreshStarts(None, f"{policy.restart_grace:g} s after"),
        *tell(incident, policy, "restarted", text),
        *((WatchComeback(),) if watch else ()),
    )
    return Step(replace(incident, state=S.RESTARTED, restarted_at=report.at), decisions)


def failed(incident: Incident, report: Report, policy: IncidentPolicy) -> Step:
    """Every leg of the restart failed for good: people are told."""
    said = tell(incident, policy, "restart-failed", alerts.restart_failed(incident.id))
    return Step(replace(incident, state=S.NOT_RESTARTED), said)


def follow_up(incident: Incident, report: Report, policy: IncidentPolicy) -> Step:
    """A room fails after the restart (not the one whose failure brought it, in the same breath): one
    loud follow-up, and a rollback when the policy says so."""
    if incident.restarted_at is None or report.at <= incident.restarted_at or incident.kind == CAPACITY:
        return Step(incident)
    if incident.maintenance:
        return Step(incident)  # escalated again when the window ends, if rooms still wait
    text = alerts.followup(incident.id, incident.agent_name, report.waiting)
    still = (
        f"canaries still fail after the restart: {report.reason}"
        if report.signal is Signal.CANARY_FAILED
        else f"room {mask_phone(report.room)} still has no agent after the restart"
    )
    said: tuple[Decision, ...] = (Note("follow-up", still), *followup_alerts(incident, policy, text))
    if policy.rollback and policy.cloud:
        rolling = replace(incident, state=S.ROLLING_BACK, rollback_claimed_at=report.at)
        return Step(rolling, (*said, Rollback()))
    return Step(replace(incident, state=S.FOLLOWED_UP), said)


def roll_again(incident: Incident, report: Report, policy: IncidentPolicy) -> Step:
    """The sweep: a rollback claimed a lease ago with no outcome is claimed and called again."""
    claimed = incident.rollback_claimed_at
    if (claimed is not None and claimed >= report.at - policy.lease) or incident.maintenance:
        return Step(incident)
    return Step(replace(incident, rollback_claimed_at=report.at), (Rollback(),))


def rolled(incident: Incident, report: Report, policy: IncidentPolicy) -> Step:
    """The rollback has its outcome: nothing more to try. Landed, the previous version runs, and the
    waiting rooms are re-checked once more."""
    fresh = (FreshStarts(None, f"{policy.restart_grace:g} s after"),) if report.landed else ()
    return Step(replace(incident, state=S.FOLLOWED_UP), fresh)


def at_once(incident: Incident, report: Report, policy: IncidentPolicy) -> Step:
    """The Cloud deployment runs again: the waiting rooms are re-checked at once, not after the grace."""
    return Step(incident, (FreshStarts(0.0, f"at once, its deployment running {report.after:.1f} s after"),))


def resolve(incident: Incident, report: Report, policy: IncidentPolicy) -> Step:
    """No room waits any more: resolved, with the time it took (not while its agent's canaries fail)."""
    if incident.canary_failing:
        return Step(incident)
    took = report.at - incident.opened_at
    text = (
        alerts.capacity_resolved(incident.id, incident.agent_name, report.rooms, took)
        if incident.kind == CAPACITY
        else alerts.resolved(incident.id, incident.agent_name, report.rooms, took)
    )
    decisions: tuple[Decision, ...] = (
        Note(
            "resolved",
            f"{report.rooms} room(s) recovered in {took:.0f} s"
            if report.rooms
            else f"canary passed, {took:.0f} s after it opened",
        ),
        *tell(incident, policy, "resolved", text),
        Resolve(),
    )
    return Step(replace(incident, state=S.RESOLVED, resolved_at=report.at), decisions)

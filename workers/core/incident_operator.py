"""The incident machine's rules for what operators do by hand (`workers.core.incident`, rule 13): an
acknowledgement, and a restart asked for now. Pure, like the machine.

An operator acknowledges an open incident (ACKNOWLEDGED, `Report.by` naming them): once, said in its log
and to every alert route that takes the step ("acknowledged": PagerDuty's `acknowledge` of the trigger's
`dedup_key`, Opsgenie's acknowledge by the alias it was created with, the incident webhook). From then on
no follow-up alert is decided (a room failing after the restart, workers found full): a person is on it;
the rollback, the resolution and its alert go on as before. The acknowledgement itself is sent in a
maintenance window too: it quiets what was paged before the window began.

An operator asks for the deployment's restart now (RESTART_ASKED): claimed as the machine claims it
(`Restart`, the deployment's lease), unless there is nothing to restart, a restart or rollback is under
way, the deployment's cooldown still runs (a restart claimed less than `cooldown` ago, by any
incident), or a maintenance window covers the agent: then refused, said in the log. The web refuses
those cases before asking (409); the machine says no too, for a request that raced another.
"""

from __future__ import annotations

from dataclasses import replace

from workers.core import alerts
from workers.core.alerts import Notify
from workers.core.incident_decisions import Decision, Note, Restart
from workers.core.incident_values import (
    DeploymentRestart,
    Incident,
    IncidentPolicy,
    IncidentState,
    Report,
    Step,
    tell,
)
from workers.core.shown import shown

S = IncidentState


def acknowledge(incident: Incident, report: Report, policy: IncidentPolicy) -> Step:
    """Acknowledged (once): said in the log and on the routes that take it; no follow-up alert from now."""
    if incident.acknowledged_at is not None:
        return Step(incident)
    acked = replace(incident, acknowledged_at=report.at, acknowledged_by=report.by)
    text = alerts.acknowledged(incident.id, incident.agent_name, report.by)
    said: tuple[Decision, ...] = (
        Note("acknowledged", f"by {shown(report.by)}"),
        *alerts.notify(policy.routes, "acknowledged", text),
    )
    return Step(acked, said)


def followup_alerts(incident: Incident, policy: IncidentPolicy, text: str) -> tuple[Note | Notify, ...]:
    """The follow-up alert on every route that takes it; none once acknowledged (a line says so), nor
    in maintenance (`tell`)."""
    if incident.acknowledged_at is not None:
        return (Note("follow-up", f"no alert: acknowledged by {shown(incident.acknowledged_by)}"),)
    return tell(incident, policy, "followup", text)


def cooldown_ends(last: DeploymentRestart, policy: IncidentPolicy) -> float | None:
    """When the cooldown of the deployment's last restart ends (None: none was claimed)."""
    return None if last.claimed_at is None else last.claimed_at + policy.cooldown


def restart_by_hand(incident: Incident, report: Report, policy: IncidentPolicy) -> Step:
    """The deployment's restart asked for now: claimed, or refused with why."""
    asked = f"asked by {shown(report.by)}"
    if incident.maintenance:
        why = "a maintenance window covers its agent (no restart while it lasts)"
        return Step(incident, (Note("restart", f"{asked}: refused: {why}"),))
    if not policy.legs:
        why = "nothing to restart (no Cloud agent and no deploy hook configured)"
        return Step(incident, (Note("restart", f"{asked}: not attempted: {why}"),))
    last, at = report.restart, report.at
    if last.under_way:
        return Step(incident, (Note("restart", f"{asked}: refused: its deployment's restart is under way"),))
    ends = cooldown_ends(last, policy)
    if ends is not None and ends > at:
        why = f"its deployment's cooldown runs {ends - at:.0f} s more"
        return Step(incident, (Note("restart", f"{asked}: refused: {why}"),))
    claimed = DeploymentRestart(claimed_at=at, pending=policy.legs)
    return Step(
        replace(incident, state=S.RESTARTING), (Note("restart", asked), Restart(policy.legs)), claimed
    )


def under_way(incident: Incident, report: Report, policy: IncidentPolicy) -> Step:
    """A restart asked for while this incident's restart or rollback is under way: refused."""
    doing = "rollback" if incident.state is S.ROLLING_BACK else "restart"
    return Step(
        incident, (Note("restart", f"asked by {shown(report.by)}: refused: its {doing} is under way"),)
    )

"""The incident machine's rules for maintenance windows (`workers.core.incident`, rule 12): a window's
start marks the incident (no restart, rollback, deploy hook nor alert while it lasts), its end unmarks it
and escalates as at an opening when rooms still wait. Pure."""

from __future__ import annotations

from dataclasses import replace

from workers.core import alerts
from workers.core.incident_decisions import Decision, Note
from workers.core.incident_rules import claim
from workers.core.incident_values import CAPACITY, Incident, IncidentPolicy, IncidentState, Report, Step, tell

S = IncidentState


def window_started(incident: Incident, report: Report, policy: IncidentPolicy) -> Step:
    """A maintenance window covers the agent: the incident is marked, and said so once in its log."""
    if incident.maintenance:
        return Step(incident)
    said = Note("maintenance", f"{report.maintenance}: no restart, rollback or deploy hook, no alert")
    return Step(replace(incident, maintenance=True), (said,))


def window_ended(incident: Incident, report: Report, policy: IncidentPolicy) -> Step:
    """The window ended (in time, or ended early): unmarked. With rooms still waiting (or its canaries
    failing) escalation proceeds as if the outage had just been seen: the opening alert, and its
    deployment's restart claimed (shared, or after the cooldown, as at an opening)."""
    if not incident.maintenance:
        return Step(incident)
    free = replace(incident, maintenance=False)
    if not report.waiting and not free.canary_failing:
        return Step(free, (Note("maintenance", "ended; no room waits"),))
    text = (
        alerts.capacity(free.id, free.agent_name, report.waiting)
        if free.kind == CAPACITY
        else alerts.opened(free.id, free.agent_name, free.reason, report.waiting, alerts.trying(policy.doing))
    )
    said: tuple[Decision, ...] = (
        Note("maintenance", f"ended; {report.waiting} room(s) still wait: escalating"),
        *tell(free, policy, "opened", text),
    )
    claimed = claim(replace(free, state=S.OPEN), report, policy)
    return replace(claimed, decisions=said + claimed.decisions)

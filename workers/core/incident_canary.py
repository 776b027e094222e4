"""The incident machine's rules for canaries (`workers.core.incident`, rule 8): failed canaries open,
join or follow up an incident as an outage does, and mark it; a passing canary unmarks it and resolves
it when no room of it waits. Pure."""

from __future__ import annotations

from dataclasses import replace

from workers.core.incident_decisions import Note
from workers.core.incident_rules import claim, follow_up, opened, resolve
from workers.core.incident_values import Incident, IncidentPolicy, Report, Step


def canary_opened(incident: Incident, report: Report, policy: IncidentPolicy) -> Step:
    """Failed canaries open the incident as an outage does, and mark it."""
    return opened(replace(incident, canary_failing=True), report, policy)


def canary_claim(incident: Incident, report: Report, policy: IncidentPolicy) -> Step:
    """Failed canaries during an open outage: one incident (marked), one restart."""
    said = canary_joins(incident, report, policy)
    claimed = claim(said.incident, report, policy)
    return replace(claimed, decisions=said.decisions + claimed.decisions)


def canary_follow_up(incident: Incident, report: Report, policy: IncidentPolicy) -> Step:
    """Canaries placed after the restart fail too: the follow-up a failed room is worth."""
    step = follow_up(incident, report, policy)
    return replace(step, incident=replace(step.incident, canary_failing=True))


def canary_joins(incident: Incident, report: Report, policy: IncidentPolicy) -> Step:
    """Failed canaries mark the incident (its restart is under way or done): it stays open for them."""
    marked = _marked(incident, report)
    return Step(marked) if marked == incident else Step(marked, (Note("canary", report.reason),))


def _marked(incident: Incident, report: Report) -> Incident:
    return incident if incident.canary_failing else replace(incident, canary_failing=True)


def canary_passed(incident: Incident, report: Report, policy: IncidentPolicy) -> Step:
    """A canary passed: unmarked, and resolved when no room of it waits."""
    if report.waiting:
        if not incident.canary_failing:
            return Step(incident)
        return Step(replace(incident, canary_failing=False), (Note("canary", "passed; rooms still wait"),))
    return resolve(replace(incident, canary_failing=False), report, policy)

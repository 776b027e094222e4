"""The incident machine's rules for LiveKit's job signals (`workers.core.incident`, rules 10 and 11):
workers that are full, and workers that take jobs and serve none. Pure, like the machine.

A capacity incident (`Incident.kind` CAPACITY) opens at the first room LiveKit refused a job of the
agent for want of capacity (`Signal.CAPACITY`): its own alert on every route ("workers for <agent> are
full"), and no restart nor rollback, ever — a restart adds no capacity; rooms keep being re-dispatched
with backoff, and it resolves when none of its rooms waits any more (their jobs were accepted). An
outage incident that hears it becomes one: said in its log and with a follow-up alert, no more
restarts or rollbacks. A canary whose job was refused (`Report.canary`: no room in it) opens or turns
it the same way and marks it `canary_failing`, so that it stays open with no room waiting until a
canary passes (CANARY_PASSED resolves it, with the capacity incident's resolution alert).

Each report may name workers that took `UNJOINED_JOBS` jobs or more within the window whose agent
never came (`Report.workers`): an open incident names each once in its log, and every alert it sends
from then on names them all (`named`), as its deploy hook and incident events do (`worker_ids`).
"""

from __future__ import annotations

from dataclasses import replace

from workers.core import alerts
from workers.core.alerts import Notify
from workers.core.incident_decisions import Decision, Note
from workers.core.incident_operator import followup_alerts
from workers.core.incident_values import (
    CAPACITY,
    Incident,
    IncidentPolicy,
    IncidentState,
    Report,
    Step,
    tell,
)

S = IncidentState
MOST_NAMED = 5  # workers an incident names at most
_FOLLOWED = (S.OPEN, S.RESTARTING, S.RESTARTED, S.NOT_RESTARTED)  # not followed up yet


def capacity_opened(incident: Incident, report: Report, policy: IncidentPolicy) -> Step:
    """The first room refused for want of capacity: a capacity incident, said once, nothing restarted."""
    born = replace(
        incident,
        state=S.OPEN,
        kind=CAPACITY,
        reason=report.reason,
        opened_at=report.at,
        canary_failing=incident.canary_failing or report.canary,
    )
    text = alerts.capacity(born.id, born.agent_name, report.rooms)
    said: tuple[Decision, ...] = (
        Note("opened", report.reason),
        Note("restart", "not attempted: a restart adds no capacity"),
        *tell(born, policy, "opened", text),
    )
    return Step(born, said)


def capacity_seen(incident: Incident, report: Report, policy: IncidentPolicy) -> Step:
    """An outage incident hears that the agent's workers are full: no more restarts or rollbacks, said
    in its log and, unless it followed up already, with a follow-up alert."""
    marked = incident.canary_failing or report.canary
    if incident.kind == CAPACITY:
        if marked == incident.canary_failing:
            return Step(incident)
        return Step(replace(incident, canary_failing=True), (Note("canary", report.reason),))
    note = Note("capacity", f"{report.reason}: no more restarts or rollbacks (a restart adds no capacity)")
    text = alerts.capacity(incident.id, incident.agent_name, report.rooms)
    said = followup_alerts(incident, policy, text) if incident.state in _FOLLOWED else ()
    return Step(replace(incident, kind=CAPACITY, canary_failing=marked), (note, *said))


def named(step: Step, report: Report) -> Step:
    """`step` naming the workers the report names that the open incident did not yet (a line each in
    its log); every alert of the step names all it has named."""
    after = step.incident
    known = {worker for worker, _ in after.workers}
    fresh = tuple((w, n) for w, n in report.workers if w not in known)[: MOST_NAMED - len(known)]
    if after.state in (S.NEW, S.RESOLVED):
        fresh = ()  # only an open incident names workers
    workers = after.workers + fresh
    if not workers:
        return step
    decisions = tuple(
        replace(d, text=alerts.naming(d.text, workers)) if isinstance(d, Notify) else d
        for d in step.decisions
    )
    notes = tuple(Note("worker", alerts.unjoined(w, n)) for w, n in fresh)
    return replace(step, incident=replace(after, workers=workers), decisions=decisions + notes)

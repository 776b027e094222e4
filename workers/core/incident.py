"""The incident state machine: one agent's outage, from its first alert to its last. Pure, like
`workers.core.machine`: no I/O, no clock, no settings; time, the deployment's restart as the store
read it, and the policy are inputs, and what to do comes back as data (`Step`). This module holds the
table and how a report goes through it; the rules' functions live beside it: an outage's in
`incident_rules` (rules 1 to 7), canaries' in `incident_canary` (8), full and named workers' in
`incident_capacity` (10, 11), maintenance windows' in `incident_windows` (12), operators' in
`incident_operator` (13), and observe mode's hand-over in `observing`.

The rules, in plain words.

1. An incident is one agent's outage. It opens (NEW → OPEN) at the first report of one: enough rooms
   missing their SLA within the outage window (OUTAGE), or one room whose re-dispatches are used up
   or that LiveKit refused (ROOM_FAILED). Opening says so once: the "opened" line of its log and the
   opening alert, which says what Warden is trying. Later reports join the open incident's rooms.
2. A restart belongs to a deployment (a LiveKit Cloud agent, a deploy hook, or both), not to an
   agent: agents that share one share its restart and its cooldown. Opened, the incident claims its
   deployment's restart (RESTARTING, `Restart`: `RestartAgent` and/or the deploy hook) unless that
   restart is under way for another incident (it shares it: RESTARTING, no second call), or landed
   less than `restart_grace` ago, while the rooms it found waiting are still being re-checked (it
   shares that one: RESTARTED at once, its own rooms re-checked too), or was claimed less than
   `cooldown` ago (it stays OPEN, and claims the restart at a report or a sweep after the cooldown).
   With no Cloud agent and no hook it is NOT_RESTARTED at once, and its log says so.
3. The restart is a lease: a Cloud restart claimed `lease` seconds ago with no outcome (its caller
   died) is claimed again at the sweep (SWEPT) and called again; a deploy hook, an outbox row, outlives
   its caller anyway. A sweep also brings an incident that missed its deployment's outcome up to date.
4. The restart's outcome is its deployment's (`DeploymentRestart.outcome`: landed as soon as one leg
   lands, failed once every leg failed for good) and reaches every open incident of it. Landed
   (RESTART_LANDED): RESTARTED, every room still waiting gets a fresh start re-checked `restart_grace`
   later (`FreshStarts`), the "restarted" alert goes out, and a Cloud restart's deployment is watched
   (`WatchComeback`): running again sooner (RUNNING_AGAIN), the rooms are re-checked at once. Failed
   (RESTART_FAILED): NOT_RESTARTED and the "restart-failed" alert; a landing after that still counts.
5. A room failing after the restart (ROOM_FAILED later than `restarted_at`) is worth one loud
   follow-up alert, never a loop: FOLLOWED_UP, or with `rollback` (a Cloud agent's) ROLLING_BACK with a
   `Rollback`, leased like the restart, whose outcome (ROLLBACK_DONE) ends it FOLLOWED_UP, the rooms
   re-checked once more if it landed. Later failures and breaches change nothing.
6. When no room of the incident waits any more (RECOVERED) it is RESOLVED: a line and an alert with
   the time it took, and its outage window is forgotten (`Resolve`), so that the breaches it counted
   do not open the next incident. A resolved incident changes no more; a new outage opens a new one.
7. Each alert is one `Notify` per alert route that takes its step (`workers.core.alerts`).
8. Canaries (`workers.core.canary`) report too. `failures` failed canaries in a row (CANARY_FAILED) are
   an outage with no room in it: they open the incident, or join the open one, as an outage does, and
   mark it `canary_failing`; after the restart they are worth the follow-up a failed room is. While
   it is marked, rooms recovering do not resolve it; a passing canary (CANARY_PASSED) unmarks it and
   resolves it when no room of it waits.
9. `INCIDENT` holds a rule for every (state, signal) pair, "ignore" included: a gap stops the import.
10. Workers that are full (CAPACITY: LiveKit refused a room's job for want of capacity) open a
    capacity incident (`Incident.kind`), or make the open one one: its own alert on every route, and
    no restart nor rollback from then on (a restart adds no capacity); rooms keep being re-dispatched
    with backoff, and it resolves as an outage does, when no room of it waits any more. A canary whose
    job was refused so (`Report.canary`) marks it `canary_failing`: it then resolves at a passing canary.
11. A worker that took `UNJOINED_JOBS` jobs within the window whose agent never came is named by the
    open incident, once in its log, and in every alert it sends from then on (`Report.workers`).
    Both rules are in `workers.core.incident_capacity`.
12. Maintenance windows (an operator's, for an agent or for every agent): each report says which
    window covers the agent now (`Report.maintenance`, read from the store per decision). When that
    is not the incident's mark, the window's start (MAINTENANCE_STARTED: marked, a line in its log) or
    end (MAINTENANCE_ENDED, on a report that carries the restart's facts: the sweep's, an outage's) is
    taken first. A marked incident is opened, joined and resolved as any, and its waiting rooms still
    get their fresh starts, but it claims no restart, rollback or deploy hook and sends no alert.
    Unmarked with rooms still waiting (or canaries failing), it escalates as if the outage had just
    been seen: the opening alert, and the restart claimed as at an opening (the cooldown applies).
13. Operators act by hand (`workers.core.incident_operator`): an open incident acknowledged
    (ACKNOWLEDGED, once) is said on the routes that take it, and decides no follow-up alert from then
    on; a restart asked for (RESTART_ASKED) is claimed as rule 2 claims one, or refused (nothing to
    restart, one under way, the deployment's cooldown) with a line in the log.
"""

from __future__ import annotations

from dataclasses import replace

from workers.core.incident_canary import (
    canary_claim,
    canary_follow_up,
    canary_joins,
    canary_opened,
    canary_passed,
)
from workers.core.incident_capacity import capacity_opened, capacity_seen, named
from workers.core.incident_decisions import (
    Decision,
    FreshStarts,
    Note,
    Resolve,
    Restart,
    Rollback,
    WatchComeback,
)
from workers.core.incident_operator import acknowledge, restart_by_hand, under_way
from workers.core.incident_rules import (
    at_once,
    catch_up,
    claim,
    failed,
    follow_up,
    ignore,
    landed,
    opened,
    resolve,
    roll_again,
    rolled,
)
from workers.core.incident_values import (
    CAPACITY,
    CLOUD,
    HOOK,
    OUTAGE,
    UNJOINED_JOBS,
    DeploymentRestart,
    Incident,
    IncidentPolicy,
    IncidentState,
    Report,
    Signal,
    Step,
    tell,
)
from workers.core.incident_windows import window_ended, window_started
from workers.core.observing import handed_over, observed
from workers.core.table import table

__all__ = [
    "CAPACITY",
    "CLOUD",
    "HOOK",
    "OUTAGE",
    "UNJOINED_JOBS",
    "Decision",
    "DeploymentRestart",
    "FreshStarts",
    "Incident",
    "IncidentPolicy",
    "IncidentState",
    "Note",
    "Report",
    "Resolve",
    "Restart",
    "Rollback",
    "Signal",
    "Step",
    "WatchComeback",
    "ignore",
    "tell",
]

S = IncidentState


G = Signal
INCIDENT = table("INCIDENT", IncidentState, Signal, {
    #                 new     open     restarting restarted  not_restarted rolling_back followed_up resolved
    G.OUTAGE:         (opened, claim,   ignore,    ignore,    ignore,       ignore,      ignore,     ignore),
    G.ROOM_FAILED:    (opened, claim,   ignore,    follow_up, ignore,       ignore,      ignore,     ignore),
    G.SWEPT:          (ignore, claim,   catch_up,  ignore,    ignore,       roll_again,  ignore,     ignore),
    G.RESTART_LANDED: (ignore, landed,  landed,    ignore,    landed,       ignore,      ignore,     ignore),
    G.RESTART_FAILED: (ignore, ignore,  failed,    ignore,    ignore,       ignore,      ignore,     ignore),
    G.RUNNING_AGAIN:  (ignore, ignore,  ignore,    at_once,   ignore,       at_once,     at_once,    ignore),
    G.ROLLBACK_DONE:  (ignore, ignore,  ignore,    ignore,    ignore,       rolled,      ignore,     ignore),
    G.RECOVERED:      (ignore, resolve, resolve,   resolve,   resolve,      resolve,     resolve,    ignore),
    G.CANARY_FAILED:  (canary_opened, canary_claim, canary_joins, canary_follow_up, canary_joins,
                       canary_joins, canary_joins, ignore),
    G.CANARY_PASSED:  (ignore, canary_passed, canary_passed, canary_passed, canary_passed, canary_passed,
                       canary_passed, ignore),
    G.CAPACITY:       (capacity_opened, capacity_seen, capacity_seen, capacity_seen, capacity_seen,
                       capacity_seen, capacity_seen, ignore),
    G.ACKNOWLEDGED:   (ignore, acknowledge, acknowledge, acknowledge, acknowledge, acknowledge, acknowledge,
                       ignore),
    G.RESTART_ASKED:  (ignore, restart_by_hand, under_way, restart_by_hand, restart_by_hand, under_way,
                       restart_by_hand, ignore),
    G.MAINTENANCE_STARTED: (window_started, window_started, window_started, window_started,
                            window_started, window_started, window_started, ignore),
    G.MAINTENANCE_ENDED: (ignore, window_ended, window_ended, window_ended, window_ended, window_ended,
                          window_ended, ignore),
    G.HANDED_OVER:    (ignore, handed_over, handed_over, handed_over, handed_over, handed_over, handed_over,
                       ignore),
})  # fmt: skip
# Reports that carry the deployment's restart as the store read it: a window's end may claim it.
CLAIMING = (G.OUTAGE, G.ROOM_FAILED, G.CANARY_FAILED, G.SWEPT, G.RESTART_ASKED)
del G


def transition(incident: Incident, report: Report, policy: IncidentPolicy) -> Step:
    """Apply one report: the start or end of a maintenance window it finds first (`windowed`), its
    rule in `INCIDENT`, then the workers it names (`incident_capacity.named`); in observe mode, as
    `observing.observed` takes the step (nothing called, no claim written)."""
    first = windowed(incident, report, policy)
    if first.restart is not None:  # the window's end claimed the restart: the report sees it claimed
        report = replace(report, restart=first.restart)
    step = INCIDENT[(first.incident.state, report.signal)](first.incident, report, policy)
    if policy.observe and report.signal is Signal.SWEPT and first.incident.state is not S.OPEN:
        step = Step(first.incident)  # observe mode has no lease nor outcome of its own to take up
    # an incident opened in maintenance says it opened, then why it is quiet
    before, after = (step, first) if incident.state is S.NEW else (first, step)
    both = Step(step.incident, before.decisions + after.decisions, step.restart or first.restart)
    step = named(both, report)
    return observed(step, policy) if policy.observe else step


def windowed(incident: Incident, report: Report, policy: IncidentPolicy) -> Step:
    """Rule 12: the maintenance window a report finds, when it is not the incident's mark, starts (any
    report) or ends (a report that carries the deployment's restart, as the sweep's does) first."""
    if report.signal in (Signal.MAINTENANCE_STARTED, Signal.MAINTENANCE_ENDED):
        return Step(incident)
    if report.maintenance and not incident.maintenance:
        signal = Signal.MAINTENANCE_STARTED
    elif not report.maintenance and incident.maintenance and report.signal in CLAIMING:
        signal = Signal.MAINTENANCE_ENDED
    else:
        return Step(incident)
    return INCIDENT[(incident.state, signal)](incident, replace(report, signal=signal), policy)

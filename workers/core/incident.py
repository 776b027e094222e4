"""The incident state machine: one agent's outage, from its first alert to its last. Pure, like
`workers.core.machine`: no I/O, no clock, no settings; time, the deployment's restart as the store
read it, and the policy are inputs, and what to do comes back as data (`Step`).

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

from workers.core import alerts
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
from workers.core.incident_operator import acknowledge, followup_alerts, restart_by_hand, under_way
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
from workers.core.observing import handed_over, observed
from workers.core.personal import mask_phone
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
    "tell",
]

# --- the rules ---------------------------------------------------------------------------------------

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

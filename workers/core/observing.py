"""Observe mode (`WARDEN_MODE=observe`, issue 28): Warden receives, asks LiveKit and decides exactly as
in act mode, records every decision as it does there, and carries out nothing that changes LiveKit or
calls out. Pure: which decisions act, what a decision not carried out says, and an incident's step as
observe mode takes it.

The rules, in plain words.

1. A room's decisions that act (`ACTING`: a dispatch, a removal, a re-dispatch, a fallback agent sent
   or removed, a caller transferred, a word to the room) are recorded in its timeline marked
   `carried_out: false` and not made (`workers.jobs.rooms.effects` is their one gate). Asking LiveKit
   (`CheckPresence`), timers and reports to the agent's incident are carried out in both modes: they
   change nothing outside Warden. A re-dispatch not made is answered as one made with no dispatch,
   so the room goes on as it would in act mode with an agent that does not come: its confirm
   deadline, then the next re-dispatch, until its re-dispatches are used up (the recovery's own bound
   and backoff), and nothing waits on a dispatch that was never made (a check reads LiveKit's listing).
   An agent it would have removed (stalled, stuck, a second copy) is still there: the part spares it
   (`AgentView.spared`), as good as gone, as it would be in act mode, so that it is not judged and
   removed again and again; the re-dispatch that follows is then bounded like any other.
2. An incident's step (`observed`): a restart or a rollback is a line of its log marked not carried
   out ("would restart"), and its claim of the deployment's restart is not written, so it counts for
   no cooldown and no lease; an alert goes out only with `alerts` (`WARDEN_OBSERVE_ALERTS`), its text
   saying it is from observe mode, else it is a line of the log not carried out. An incident that
   "would restart" stays in `restarting` (nothing lands) and the sweep takes nothing up in observe
   mode (no lease of its own to take up): "would restart" once per outage, as act restarts once.
3. Switching to act needs a restart of the worker only: a part failed in observe mode was failed by
   re-dispatches never made, so the open incidents observe mode opened (a line of their log says so:
   one with nothing to restart and its alerts sent has no line not carried out) or whose log holds a
   line not carried out are handed over (`workers.escalation.agents.Incidents.hand_over`): their
   waiting rooms get a fresh start at once that forgets what observe mode decided for them and did
   not make (`unobserved`: a fallback never sent would otherwise never be sent, a status never told
   never told), and the incident is resolved as observed (HANDED_OVER, `handed_over`): its alerts still
   in the outbox are withdrawn (sent after the resolution, one would open an alert nothing resolves),
   and its "resolved" alert goes out on the routes an alert of it landed on (its log's `landed_on`),
   and only there (none without `WARDEN_OBSERVE_ALERTS`), so that no route keeps an open alert
   (`workers.escalation.couriers.alerted_at_hand_over`); act decides afresh from there. An agent
   observe mode spared counts again in act mode, wherever it is (`machine`: `Policy.observing`): act
   judges it afresh, a room with no incident included (a second copy spared, the first one gone: the
   spared one serves).
"""

from __future__ import annotations

from dataclasses import replace

from workers.core import alerts
from workers.core.alerts import Notify
from workers.core.incident_decisions import Decision, Note, Resolve, Restart, Rollback
from workers.core.incident_values import Incident, IncidentPolicy, IncidentState, Report, Step
from workers.core.protecting import DispatchFallback, Protection, RemoveFallback, SendStatus, TransferCaller
from workers.core.room import AgentView, Dispatch, Evict, Redispatch

ACT, OBSERVE = "act", "observe"

# A room's actions that change LiveKit, by name, with what observe mode says of them instead.
WOULD = {
    Redispatch.__name__: "would re-dispatch",
    Evict.__name__: "would remove",
    Dispatch.__name__: "would dispatch",
    DispatchFallback.__name__: "would dispatch the fallback agent",
    TransferCaller.__name__: "would transfer the caller",
    RemoveFallback.__name__: "would remove the fallback agent",
    SendStatus.__name__: "would tell the room",
    # and the answers observe mode gives itself for the steps it did not make
    "agent_dispatched": "no dispatch made",
    "agent_evicted": "nobody removed",
}
ACTING = (Redispatch, Evict, Dispatch, DispatchFallback, TransferCaller, RemoveFallback, SendStatus)
OBSERVED_ALERT = " (Warden is in observe mode: it changed nothing)"


def mode(observe: bool) -> str:
    return OBSERVE if observe else ACT


def carried_out(action: object, observe: bool) -> bool:
    """Is `action` carried out? Always in act mode; in observe mode, unless it would change LiveKit."""
    return not (observe and isinstance(action, ACTING))


def would(name: str) -> str:
    """What a decision not carried out says ("would re-dispatch"), by its action's name."""
    return WOULD.get(name, f"would {name}")


def observed(step: Step, policy: IncidentPolicy) -> Step:
    """An incident's `step` as observe mode takes it: nothing called, no claim written, alerts only with
    `policy.observe_alerts` (marked), the rest lines not carried out. (The sweep's step is dropped
    before, by `workers.core.incident.transition`, but in an open incident: observe mode has no lease
    nor outcome of its own to take up, only a cooldown's end.)"""
    decisions: list[Decision] = []
    silenced: dict[str, list[str]] = {}
    for decision in step.decisions:
        if isinstance(decision, Restart):
            doing = policy.doing or "its deployment"
            decisions.append(Note("restart", f"would restart: {doing}", carried_out=False))
        elif isinstance(decision, Rollback):
            decisions.append(Note("rollback", "would roll back to the previous version", carried_out=False))
        elif isinstance(decision, Notify) and policy.observe_alerts:
            decisions.append(replace(decision, text=decision.text + OBSERVED_ALERT))
        elif isinstance(decision, Notify):
            silenced.setdefault(decision.step, []).append(decision.route)
        else:
            decisions.append(decision)
    for what, routes in silenced.items():
        line = f"would alert {what} ({', '.join(routes)}): not sent, WARDEN_OBSERVE_ALERTS is off"
        decisions.append(Note("alert", line, carried_out=False))
    return replace(step, decisions=tuple(decisions), restart=None)


def handed_over(incident: Incident, report: Report, policy: IncidentPolicy) -> Step:
    """Rule 3 (HANDED_OVER, in act mode): the incident is resolved as observed, its `report.rooms`
    waiting rooms given a fresh start, and its resolution said on exactly the routes an alert of it
    went out on (`report.alerted`: with `WARDEN_OBSERVE_ALERTS`), so that none keeps an open alert."""
    line = f"observed (Warden now acts): {report.rooms} waiting room(s) looked at afresh"
    routes = tuple(route for route in policy.routes if route.key in report.alerted)
    said = alerts.notify(routes, "resolved", alerts.handed_over(incident.id, incident.agent_name))
    resolved = replace(incident, state=IncidentState.RESOLVED, resolved_at=report.at)
    return Step(resolved, (Note("resolved", line), *said, Resolve()))


def counted(decisions: tuple[Decision, ...]) -> list[str]:
    """An incident step's decisions as `warden_decisions_total` counts them, the same in both modes: a
    restart, a rollback, an alert per step (whatever its routes), made or only recorded."""
    names: list[str] = []
    alerted: set[str] = set()
    for decision in decisions:
        if isinstance(decision, Restart | Rollback):
            names.append(type(decision).__name__)
        elif isinstance(decision, Notify):
            alerted.add(decision.step)
        elif isinstance(decision, Note) and not decision.carried_out:
            names.append(_NOTED.get(decision.action, decision.action))
    return names + ["Alert"] * len(alerted)


_NOTED = {"restart": Restart.__name__, "rollback": Rollback.__name__, "alert": "Alert"}


def unobserved(view: AgentView) -> AgentView:
    """The part with what observe mode decided and did not make forgotten: no fallback taken, no outage
    known, nothing told to the room, no agent spared (act mode takes, tells and removes them itself,
    when they are due)."""
    return replace(
        view,
        outage_at=None,
        fallback=Protection.NONE,
        fallback_reason="",
        fallback_agent="",
        fallback_to="",
        told="",
        told_at=None,
        spared=(),
    )

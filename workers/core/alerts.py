"""What an incident tells people, and through which alert routes: its alerts' texts (pure functions
of the incident's facts), and which route takes which step.

An incident's steps are "opened", "restarted", "followup", "restart-failed", "acknowledged" (by an
operator) and "resolved". Slack (the
Slack-compatible alert webhook) takes the steps people act on; a restart that landed is news for
routers, not for people. Each other route (PagerDuty, Opsgenie, the incident webhook) says the steps it
takes (`workers.adapters.alert_routes`). An alert is one `Notify` per route that takes its step, so that
each route is tried, retried and given up on its own.

The values in a text that Warden was sent (an agent's name, a reason quoting LiveKit) are written as
`workers.core.shown.shown` writes them for people: phone numbers masked, control characters escaped,
bounded. (The Slack route also escapes Slack's own markup, `workers.adapters.hooks`.)
"""

from __future__ import annotations

from dataclasses import dataclass

from workers.core.shown import TEXT_CHARS, shown

SLACK = "slack"
SLACK_STEPS = frozenset({"opened", "followup", "restart-failed", "resolved"})
NOTHING_TO_RESTART = "nothing to restart (no Cloud agent or deploy hook set)"


@dataclass(frozen=True)
class AlertRoute:
    """An alert route by its key (`SLACK`, "pagerduty", "opsgenie", "webhook") and the steps it takes."""

    key: str
    steps: frozenset[str]


@dataclass(frozen=True)
class Notify:
    """An alert: `text` about one `step` of the incident, for one alert `route`."""

    route: str
    step: str
    text: str


def notify(routes: tuple[AlertRoute, ...], step: str, text: str) -> tuple[Notify, ...]:
    """`text` for every route that takes `step`, in the routes' order (none when no route does)."""
    return tuple(Notify(route.key, step, text) for route in routes if step in route.steps)


def trying(doing: str) -> str:
    """What Warden does in an outage (the restart's legs, by name), as the opening alert says it."""
    return doing or NOTHING_TO_RESTART


def opened(incident_id: str, agent: str, reason: str, rooms: int, doing: str) -> str:
    return (
        f":rotating_light: Warden incident {incident_id}: agent '{shown(agent)}' is not coming — "
        f"{shown(reason, TEXT_CHARS)}. "
        f"{_affected(rooms)} Warden is trying: {doing}."
    )


def _affected(rooms: int) -> str:
    """How many user rooms an outage hurts so far (none: a canary found it first)."""
    return f"{rooms} room(s) affected so far." if rooms else "No user room affected yet (found by a canary)."


def restarted(incident_id: str, agent: str, grace: float, *, sooner: bool) -> str:
    """`sooner`: a Cloud deployment, whose rooms are re-checked as soon as it runs again."""
    when = "as soon as its deployment runs, at most " if sooner else ""
    return (
        f":arrows_counterclockwise: Warden incident {incident_id}: agent '{shown(agent)}' restarted; waiting "
        f"rooms are re-checked {when}{grace:g} s later."
    )


def followup(incident_id: str, agent: str, waiting: int) -> str:
    return (
        f":warning: Warden incident {incident_id}: agent '{shown(agent)}' still does not come after the "
        f"restart; {waiting} room(s) waiting. A person is needed."
    )


def restart_failed(incident_id: str) -> str:
    return f":x: Warden incident {incident_id}: the restart failed; see the incident's log."


def resolved(incident_id: str, agent: str, rooms: int, took: float) -> str:
    how = f"{rooms} room(s) recovered" if rooms else "its canary passed"
    return (
        f":white_check_mark: Warden incident {incident_id} resolved: agent '{shown(agent)}' is back; "
        f"{how}, {took:.0f} s after the incident opened."
    )


def handed_over(incident_id: str, agent: str) -> str:
    """An incident observe mode opened (with `WARDEN_OBSERVE_ALERTS`), closed as Warden starts to act."""
    return (
        f":white_check_mark: Warden incident {incident_id} resolved: opened in observe mode, handed over "
        f"now that Warden acts; agent '{shown(agent)}' is looked at afresh (a new incident if it still "
        f"does not come)."
    )


def capacity(incident_id: str, agent: str, rooms: int) -> str:
    """A capacity incident: LiveKit refuses the agent's jobs because its workers are full."""
    return (
        f":no_entry: Warden incident {incident_id}: workers for {shown(agent)} are full — LiveKit refuses "
        f"their jobs for want of capacity (JSR_NO_CAPACITY). {_affected(rooms)} A restart adds no "
        f"capacity: Warden re-dispatches with backoff, and restarts nothing; add workers or capacity."
    )


def capacity_resolved(incident_id: str, agent: str, rooms: int, took: float) -> str:
    return (
        f":white_check_mark: Warden incident {incident_id} resolved: workers for {shown(agent)} accept "
        f"jobs again; {rooms} room(s) recovered, {took:.0f} s after the incident opened."
    )


def acknowledged(incident_id: str, agent: str, by: str) -> str:
    """An operator is on it: no more follow-up alerts."""
    return (
        f":eyes: Warden incident {incident_id}: agent '{shown(agent)}' acknowledged by {shown(by)}; "
        f"no more follow-up alerts."
    )


def unjoined(worker: str, jobs: int) -> str:
    """A worker that took jobs whose agents never came (a half-open socket can swallow them)."""
    return f"worker {shown(worker)} took {jobs} jobs and none joined"


def naming(text: str, workers: tuple[tuple[str, int], ...]) -> str:
    """`text` naming the workers that took jobs and served none, so that that worker alone is restarted."""
    if not workers:
        return text
    said = "; ".join(unjoined(worker, jobs) for worker, jobs in workers)
    which = "that worker" if len(workers) == 1 else "those workers"
    return f"{text} {said[0].upper()}{said[1:]}: restart {which}."

"""Calls Warden makes to the world outside LiveKit about an incident: alerts and deploy hooks.

Each is decided by an incident step and kept in the outbox (`workers.store.outbox`, no room) under a
deterministic id until it lands, a receiver refuses it for good (4xx), or its retry time is over. The
outbox row's `kind` is the class name: the outbox reads the row as that class (`workers.store.outbox`),
and the escalation's couriers pick the route that sends it (`workers.escalation.couriers`).

An `Alert` is the Slack-compatible message; each other alert route (PagerDuty, Opsgenie, the signed
incident webhook) gets an `IncidentEvent` of its own for the same step, so that each is tried, retried
and given up on its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from workers.core.plain import tagged


@dataclass(frozen=True)
class Alert:
    """A message to people about incident `incident_id`, at one of its `step`s (opened, followup,
    restart-failed, resolved)."""

    incident_id: str
    step: str
    text: str

    @property
    def id(self) -> str:
        return f"alert:{self.incident_id}:{self.step}"


@dataclass(frozen=True)
class DeployHook:
    """The incident's restart of self-hosted workers through `WARDEN_DEPLOY_HOOK_URL`."""

    incident_id: str
    agent_name: str
    reason: str
    rooms: tuple[str, ...] = ()
    worker_ids: tuple[str, ...] = ()  # workers that took jobs and served none: restart them alone

    @property
    def id(self) -> str:
        return f"hook:{self.incident_id}:restart"


@dataclass(frozen=True)
class IncidentEvent:
    """A step of incident `incident_id` (opened, restarted, followup, restart-failed, acknowledged,
    resolved) for one
    alert `route` ("pagerduty", "opsgenie", "webhook"), with what the receiver needs to know: the
    agent, the rooms affected, what Warden is doing about it, and `text`, the alert's message; the
    incident's `kind` (outage, capacity) and the workers it names (`worker_ids`)."""

    route: str
    incident_id: str
    step: str
    agent_name: str
    text: str
    at: float
    rooms: tuple[str, ...] = ()
    doing: str = ""
    kind: str = "outage"
    worker_ids: tuple[str, ...] = ()
    by: str = ""  # "acknowledged": the operator's name

    @property
    def id(self) -> str:
        return f"{self.route}:{self.incident_id}:{self.step}"

    @property
    def summary(self) -> str:
        """`text` without its leading Slack emoji (":rotating_light: ")."""
        head, sep, rest = self.text.partition(" ")
        return rest if sep and len(head) > 2 and head.startswith(":") and head.endswith(":") else self.text


Outgoing = Alert | DeployHook | IncidentEvent


def outgoing_to_dict(call: Outgoing) -> dict[str, Any]:
    """The call as the outbox's JSON payload: its kind and fields."""
    return tagged(call)

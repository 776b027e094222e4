"""Calls Warden makes to the world outside LiveKit about an incident: alerts and deploy hooks.

Each is decided by an incident step and kept in the outbox (`workers.store.outbox`, no room) under a
deterministic id until it lands, a receiver refuses it for good (4xx), or its retry time is over. The
outbox row's `kind` is the class name, and picks the route that sends it (`workers.jobs.outgoing`): a
new destination (PagerDuty, Opsgenie, a generic webhook) is one more kind here and one more route there.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from workers.core.plain import as_dict


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

    @property
    def id(self) -> str:
        return f"hook:{self.incident_id}:restart"


Outgoing = Alert | DeployHook


def outgoing_to_dict(call: Outgoing) -> dict[str, Any]:
    """The call as the outbox's JSON payload: its kind and fields."""
    return {"action": type(call).__name__, **as_dict(call)}


def outgoing_from_dict(data: dict[str, Any]) -> Outgoing:
    """Inverse of `outgoing_to_dict`."""
    fields = {k: v for k, v in data.items() if k != "action"}
    match data["action"]:
        case "Alert":
            return Alert(**fields)
        case "DeployHook":
            return DeployHook(**{**fields, "rooms": tuple(fields.get("rooms", ()))})
    raise ValueError(f"not an outgoing call: {data['action']!r}")

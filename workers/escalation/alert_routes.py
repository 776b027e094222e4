"""Where an incident's alerts go: the Slack-compatible webhook (`Alert`) and the other alert routes
(PagerDuty, Opsgenie, the signed incident webhook: `IncidentEvent`s), any combination at once.

Escalation decides one `Alert` per step (opened, restarted, followup, restart-failed, resolved); here it
becomes one outgoing call per route that takes that step, each an outbox row of its own, so that each
route is tried, retried and given up on its own (`workers.escalation.couriers`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from workers.core.outgoing import Alert, IncidentEvent, Outgoing
from workers.core.personal import mask_phone

# Slack gets the steps it always had: a restart that landed is news for routers, not for people.
SLACK_STEPS = frozenset({"opened", "followup", "restart-failed", "resolved"})


class EventRoute(Protocol):
    """An adapter of `workers.adapters.alert_routes`: its name, the steps it takes, and its send."""

    name: str
    steps: frozenset[str]

    async def send(self, event: IncidentEvent) -> str:
        """Send `event`; return what the receiver answered, or raise `UpstreamError`."""
        ...


def route_key(call: Outgoing) -> str:
    """The key of the route that sends `call` (in `Couriers.routes`)."""
    return f"IncidentEvent:{call.route}" if isinstance(call, IncidentEvent) else type(call).__name__


@dataclass(frozen=True)
class AlertRoutes:
    """The alert routes configured: Slack or not, the others by key ("pagerduty", "opsgenie",
    "webhook"), and what Warden does in an outage (which the opening events say)."""

    slack: bool = False
    events: Mapping[str, EventRoute] = field(default_factory=dict)
    doing: str = ""

    def senders(self) -> dict[str, Callable[[Any], Awaitable[str]]]:
        """The `Couriers` routes of the event routes."""
        return {f"IncidentEvent:{key}": route.send for key, route in self.events.items()}

    def names(self) -> dict[str, str]:
        """Each event route's name in the incident's log, by key."""
        return {key: route.name for key, route in self.events.items()}

    def calls(self, alert: Alert, agent_name: str, rooms: list[str], now: float) -> list[Outgoing]:
        """`alert` for every route that takes its step (none when no route does)."""
        calls: list[Outgoing] = [alert] if self.slack and alert.step in SLACK_STEPS else []
        masked = tuple(mask_phone(room) for room in rooms)  # SIP rooms are named after the caller
        calls.extend(
            IncidentEvent(
                key,
                alert.incident_id,
                alert.step,
                agent_name,
                alert.text,
                now,
                masked,
                self.doing,
            )
            for key, route in self.events.items()
            if alert.step in route.steps
        )
        return calls

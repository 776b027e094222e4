"""Where an incident's alerts go: the Slack-compatible webhook (`Alert`) and the other alert routes
(PagerDuty, Opsgenie, the signed incident webhook: `IncidentEvent`s), any combination at once.

The incident machine decides one `Notify` per route that takes a step (`workers.core.alerts`); here
each becomes the outgoing call of its route, an outbox row of its own, so that each route is tried,
retried and given up on its own (`workers.escalation.couriers`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from workers.core.alerts import SLACK, SLACK_STEPS, AlertRoute, Notify
from workers.core.incident import CAPACITY, Incident
from workers.core.outgoing import Alert, IncidentEvent, Outgoing
from workers.core.personal import mask_phone

CAPACITY_DOING = "re-dispatching with backoff; nothing restarted (a restart adds no capacity)"


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
    "webhook"), and what Warden does in an outage (which the routes' events say)."""

    slack: bool = False
    events: Mapping[str, EventRoute] = field(default_factory=dict)
    doing: str = ""

    def routes(self) -> tuple[AlertRoute, ...]:
        """The routes and the steps each takes, for the incident machine: Slack first."""
        slack = (AlertRoute(SLACK, SLACK_STEPS),) if self.slack else ()
        return slack + tuple(AlertRoute(key, route.steps) for key, route in self.events.items())

    def senders(self) -> dict[str, Callable[[Any], Awaitable[str]]]:
        """The `Couriers` routes of the event routes."""
        return {f"IncidentEvent:{key}": route.send for key, route in self.events.items()}

    def names(self) -> dict[str, str]:
        """Each event route's name in the incident's log, by key."""
        return {key: route.name for key, route in self.events.items()}

    def call(
        self, notify: Notify, incident: Incident, agent_name: str, rooms: list[str], now: float
    ) -> Outgoing:
        """The outgoing call of `notify`: Slack's message, or another route's event (which names the
        rooms, masked: SIP rooms are named after the caller; the incident's kind, and the workers it
        names). A capacity incident restarts nothing, whatever the agent's deployment."""
        if notify.route == SLACK:
            return Alert(incident.id, notify.step, notify.text)
        masked = tuple(mask_phone(room) for room in rooms)
        doing = CAPACITY_DOING if incident.kind == CAPACITY else self.doing
        workers = tuple(worker for worker, _ in incident.workers)
        return IncidentEvent(
            notify.route,
            incident.id,
            notify.step,
            agent_name,
            notify.text,
            now,
            masked,
            doing,
            incident.kind,
            workers,
            incident.acknowledged_by if notify.step == "acknowledged" else "",
        )

"""The outbox's outgoing calls (`workers.core.outgoing`: alerts, incident events for the other alert
routes, deploy hooks): their rows, as an incident step decides them, and their sending until they land.

Each kind of call has a route (the adapter that sends it). One attempt is one call of its route, and
every attempt is a line of the incident's log: sent, failed (tried again later, with the outbox's
backoff), refused for good (4xx: never tried again), or given up once `retry_for` seconds have passed
since the call was decided, however many workers died meanwhile.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from workers.core.alerts import SLACK, AlertRoute, Notify
from workers.core.errors import UpstreamError
from workers.core.incident import HOOK, Decision, Incident, Restart
from workers.core.outgoing import Alert, DeployHook, IncidentEvent, Outgoing
from workers.escalation.alert_routes import AlertRoutes, route_key
from workers.store import incidents, outbox
from workers.store.incident_steps import Rows
from workers.store.outbox import Pending

# A route sends one call and says how it went ("alert webhook answered HTTP 200"), or raises UpstreamError.
Route = Callable[[Any], Awaitable[str]]


def label(call: Outgoing, names: Mapping[str, str]) -> str:
    """The call's name in the incident's log ("alert opened", "PagerDuty resolved", "deploy hook"), with
    `names` the event routes' names by key."""
    if isinstance(call, IncidentEvent):
        return label_of(call.route, call.step, names)
    return label_of(SLACK, call.step, names) if isinstance(call, Alert) else "deploy hook"


def route_of(call: Outgoing) -> str | None:
    """The key of the alert route an alert or incident event is for (None: a deploy hook)."""
    if isinstance(call, IncidentEvent):
        return call.route
    return SLACK if isinstance(call, Alert) else None


WITHDRAWN = "not sent: withdrawn, the incident was handed over"


async def alerted_at_hand_over(
    engine: AsyncEngine,
    incident_id: str,
    routes: tuple[AlertRoute, ...],
    names: Mapping[str, str],
    now: float,
) -> tuple[str, ...]:
    """The keys of the alert `routes` to say the hand-over's "resolved" on (`workers.core.observing`,
    rule 3). Its alerts still in the outbox are withdrawn first (each a line of the log): sent after the
    resolution, one would open an alert that nothing resolves. Then the routes on which an alert of it
    landed (the log's `landed_on`), and those of a call withdrawn during its first try (it may be landing
    now: a "resolved" for an alert that never came is harmless, an open alert for ever is not)."""
    withdrawn = await outbox.withdraw_calls(engine, incident_id, now)
    for call, _ in withdrawn:
        await incidents.note(engine, incident_id, now, label(call, names), WITHDRAWN, carried_out=False)
    said = await incidents.landed_on(engine, incident_id)
    said |= {key for call, trying in withdrawn if trying and (key := route_of(call)) is not None}
    return tuple(route.key for route in routes if route.key in said)


def label_of(route: str, step: str, names: Mapping[str, str]) -> str:
    """The log's label of a call of `step` on `route` (as `label` names it)."""
    return f"alert {step}" if route == SLACK else f"{names.get(route, route)} {step}"


class Couriers:
    """The routes by kind, and the rules of trying again."""

    def __init__(
        self,
        engine: AsyncEngine,
        routes: Mapping[str, Route],
        *,
        retry_for: float,
        clock: Callable[[], float],
        names: Mapping[str, str] | None = None,
    ) -> None:
        self.engine, self.routes, self.retry_for, self.clock = engine, routes, retry_for, clock
        self.names = names or {}

    async def send(self, pending: Pending) -> bool:
        """Try the call once, noting the attempt in its incident's log. True: it landed; False: refused
        for good, given up, or there is no route for it any more; raises `UpstreamError` when it is to
        be tried again later."""
        call = pending.action
        assert isinstance(call, Alert | DeployHook | IncidentEvent), call
        route = self.routes.get(route_key(call))
        if route is None:
            await self._note(call, "not sent: no destination configured any more")
            return False
        attempt = f"attempt {pending.attempts}"
        try:
            outcome = await route(call)
        except UpstreamError as exc:
            if not exc.retryable:
                await self._note(call, f"refused for good ({attempt}): {exc}")
                return False
            age = self.clock() - pending.created_at
            if age >= self.retry_for:
                await self._note(call, f"gave up ({attempt}, {age:.0f} s after it was decided): {exc}")
                return False
            await self._note(call, f"failed ({attempt}): {exc}; tried again later")
            raise
        await self._note(call, f"{outcome} ({attempt})", landed_on=route_of(call))
        return True

    async def _note(self, call: Outgoing, outcome: str, *, landed_on: str | None = None) -> None:
        what = label(call, self.names)
        await incidents.note(self.engine, call.incident_id, self.clock(), what, outcome, landed_on=landed_on)


def outbox_rows(
    agent_name: str, alert_routes: AlertRoutes, *, clock: Callable[[], float], held_for: float
) -> Rows:
    """The outbox rows an incident step of `agent_name` decides, given the incident's room names (which
    a deploy hook and the alert routes' events carry): one call per `Notify`, and the deploy hook of a
    `Restart` that calls it; held by the writer for `held_for` seconds, for their first try."""

    def rows(incident: Incident, decisions: tuple[Decision, ...], names: list[str]) -> list[dict[str, Any]]:
        now = clock()
        calls: list[Outgoing] = []
        workers = tuple(worker for worker, _ in incident.workers)
        for decision in decisions:
            if isinstance(decision, Notify):
                calls.append(alert_routes.call(decision, incident, agent_name, names, now))
            elif isinstance(decision, Restart) and HOOK in decision.legs:
                calls.append(DeployHook(incident.id, agent_name, incident.reason, tuple(names), workers))
        return [outbox.outgoing_row(call, now, held_for=held_for) for call in calls]

    return rows

"""Sending the outbox's outgoing calls (`workers.core.outgoing`: alerts, incident events for the other
alert routes, deploy hooks) until they land.

Each kind of call has a route (the adapter that sends it). One attempt is one call of its route, and
every attempt is a line of the incident's log: sent, failed (tried again later, with the outbox's
backoff), refused for good (4xx: never tried again), or given up once `retry_for` seconds have passed
since the call was decided, however many workers died meanwhile.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from workers.core.errors import UpstreamError
from workers.core.outgoing import Alert, DeployHook, IncidentEvent, Outgoing
from workers.escalation.alert_routes import route_key
from workers.store import incidents, outbox
from workers.store.outbox import Pending

# A route sends one call and says how it went ("alert webhook answered HTTP 200"), or raises UpstreamError.
Route = Callable[[Any], Awaitable[str]]


def label(call: Outgoing, names: Mapping[str, str]) -> str:
    """The call's name in the incident's log ("alert opened", "PagerDuty resolved", "deploy hook"), with
    `names` the event routes' names by key."""
    if isinstance(call, IncidentEvent):
        return f"{names.get(call.route, call.route)} {call.step}"
    return f"alert {call.step}" if isinstance(call, Alert) else "deploy hook"


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
        await self._note(call, f"{outcome} ({attempt})")
        return True

    async def _note(self, call: Outgoing, outcome: str) -> None:
        await incidents.note(self.engine, call.incident_id, self.clock(), label(call, self.names), outcome)


# An alert as the calls of the alert routes that take its step, given the incident's room names.
FanOut = Callable[[Alert, list[str]], list[Outgoing]]


class Decided:
    """The outgoing calls an incident step decides, as outbox rows: called by the claim's transaction
    (with the incident's room names, which a deploy hook and the alert routes' events carry), then read
    back as `rows`, held by this process for the first try. Each alert is one call per alert route that
    takes its step (`fan_out`)."""

    def __init__(self, now: float, held_for: float, calls: list[Outgoing], fan_out: FanOut) -> None:
        self.now, self.held_for, self.calls, self.fan_out = now, held_for, calls, fan_out
        self.rows: list[dict[str, Any]] = []

    def __call__(self, rooms: list[str]) -> list[dict[str, Any]]:
        calls: list[Outgoing] = []
        for c in self.calls:
            if isinstance(c, Alert):
                calls.extend(self.fan_out(c, rooms))
            elif isinstance(c, DeployHook):
                calls.append(DeployHook(c.incident_id, c.agent_name, c.reason, tuple(rooms)))
            else:
                calls.append(c)
        self.rows = [outbox.outgoing_row(c, self.now, held_for=self.held_for) for c in calls]
        return self.rows

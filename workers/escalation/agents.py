"""Escalation per agent: one `Escalation` for each agent name a room reports trouble with, so that an
outage of the notetaker counts, opens an incident and restarts the notetaker's deployment only.

Which deployment belongs to which agent is the rules' business (`cloud_agent_id` or `deploy_hook_url`
in the rule that matched the room); without one, the environment's (`WARDEN_CLOUD_AGENT_ID`,
`WARDEN_DEPLOY_HOOK_URL`) applies, as it did when Warden watched a single agent.
"""

from __future__ import annotations

import copy
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import replace

import httpx
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from workers.adapters.cloud import Cloud
from workers.adapters.hooks import DeployHook as DeployHookCaller
from workers.core.outgoing import DeployHook, IncidentEvent
from workers.core.room import Room
from workers.core.rules import Rules
from workers.escalation.alert_routes import EventRoute
from workers.escalation.escalation import Escalation
from workers.escalation.policy import Alerter, EscalationPolicy, Restarter
from workers.store import incidents
from workers.store.outbox import Pending

FreshStart = Callable[[str, str, str, str, float | None], Awaitable[None]]  # sid, name, incident, agent, wait


class Escalations:
    """The `Escalator` the effects call: each room's trouble goes to its agent's escalation."""

    def __init__(
        self,
        *,
        engine: AsyncEngine,
        redis: Redis,
        policy: EscalationPolicy,
        rules: Rules,
        cloud: Cloud | None,
        hook: Restarter | None,
        hook_secret: str,
        http: httpx.AsyncClient,
        alerter: Alerter | None,
        clock: Callable[[], float],
        fresh_start: FreshStart,
        alert_routes: Mapping[str, EventRoute] | None = None,
    ) -> None:
        self.engine, self.redis, self.policy, self.rules = engine, redis, policy, rules
        self.cloud, self.hook, self.hook_secret, self.http = cloud, hook, hook_secret, http
        self.alerter, self.clock, self.fresh_start = alerter, clock, fresh_start
        self.alert_routes = alert_routes
        self.by_agent: dict[str, Escalation] = {}

    def agent_of(self, agent: str) -> str:
        """Whom a room's trouble is about (a notice from before views existed names none:
        `WARDEN_AGENT_NAME`'s)."""
        return agent or self.policy.agent_name

    def escalation(self, agent: str, room: Room | None = None) -> Escalation:
        """The escalation of `agent`, made at its first trouble with the restart target of its rule."""
        found = self.by_agent.get(agent)
        if found is not None:
            return found
        cloud, hook = self.cloud, self.hook
        rule = self.rules.rule_for_agent(agent, room.name if room else "", room.sip if room else False)
        if rule.cloud_agent_id or rule.deploy_hook_url:
            if rule.cloud_agent_id and cloud is not None:
                cloud = copy.copy(cloud)  # the same session, another agent id
                cloud.agent_id = rule.cloud_agent_id
                hook = None
            elif rule.deploy_hook_url:
                hook, cloud = DeployHookCaller(self.http, rule.deploy_hook_url, self.hook_secret), None

        async def fresh_start(sid: str, name: str, incident_id: str, wait: float | None) -> None:
            await self.fresh_start(sid, name, incident_id, agent, wait)

        made = Escalation(
            engine=self.engine,
            redis=self.redis,
            policy=replace(self.policy, agent_name=agent),
            cloud=cloud,
            hook=hook,
            alerter=self.alerter,
            clock=self.clock,
            fresh_start=fresh_start,
            alert_routes=self.alert_routes,
        )
        self.by_agent[agent] = made
        return made

    async def breach(self, room: Room, agent: str, reason: str) -> None:
        await self.escalation(self.agent_of(agent), room).breach(room, reason)

    async def room_failed(self, room: Room, agent: str, reason: str) -> None:
        await self.escalation(self.agent_of(agent), room).room_failed(room, reason)

    async def room_recovered(self, room: Room, agent: str) -> None:
        await self.escalation(self.agent_of(agent), room).room_recovered(room)

    async def settle(self) -> None:
        agents = set(self.by_agent) | set(await incidents.open_agents(self.engine)) | {self.policy.agent_name}
        for agent in sorted(agents):
            await self.escalation(agent).settle()

    async def deliver(self, pending: Pending) -> None:
        action = pending.action
        agent = (
            action.agent_name if isinstance(action, DeployHook | IncidentEvent) else self.policy.agent_name
        )
        await self.escalation(agent).deliver(pending)

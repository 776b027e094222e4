"""Incidents per agent, restarts per deployment: one `AgentIncidents` for each agent name a room reports
trouble with, so that an outage of the notetaker counts, opens an incident and alerts for the notetaker
only, and the restart of a deployment reaches every agent it runs.

Which deployment belongs to which agent is the rules' business (`cloud_agent_id` or `deploy_hook_url`
in the rule that matched the room); without one, the environment's (`WARDEN_CLOUD_AGENT_ID`,
`WARDEN_DEPLOY_HOOK_URL`) applies, as it did when Warden watched a single agent. Agents that share a
Cloud agent id or a deploy hook share its restart (`workers.escalation.policy.deployment_key`): the
incident machine claims it once for all of them, and its outcome moves each of their incidents
(`outcome`), whose Cloud deployment is then watched once (`workers.escalation.comeback.when_back`).
"""

from __future__ import annotations

import asyncio
import copy
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import replace
from typing import Protocol, TypeVar

import httpx
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from workers.adapters.cloud import Cloud
from workers.adapters.hooks import DeployHook as DeployHookCaller
from workers.core import alerts
from workers.core.fallback import fallback_line
from workers.core.incident import HOOK, IncidentPolicy, Report, Signal, WatchComeback
from workers.core.outgoing import Alert, DeployHook, IncidentEvent
from workers.core.personal import mask_phone
from workers.core.room import ReportBreach, ReportRecovered, Room
from workers.core.rules import Rules
from workers.escalation import comeback
from workers.escalation.agent import AgentIncidents
from workers.escalation.alert_routes import AlertRoutes, EventRoute
from workers.escalation.couriers import Couriers, Route, alerted_at_hand_over, label, outbox_rows
from workers.escalation.metrics import RESTARTS
from workers.escalation.policy import Alerter, OutagePolicy, Restarter, deployment_key
from workers.escalation.window import OutageWindow
from workers.store import incident_steps, incidents
from workers.store.outbox import Pending
from workers.store.runs import ends_the_run, passed_over

log = logging.getLogger("warden.escalation")
T = TypeVar("T")


class FreshStart(Protocol):
    """A fresh start of each waiting room of `rooms` ((sid, name)) for `agent` after incident
    `incident_id`'s restart, re-checked `wait` seconds on (None: the restart grace; 0: at once, in bulk);
    `observed`: act mode taking over from observe mode."""

    def __call__(
        self,
        rooms: Sequence[tuple[str, str]],
        incident_id: str,
        agent: str,
        wait: float | None,
        *,
        observed: bool = False,
    ) -> Awaitable[None]: ...


class Incidents:
    """The `IncidentReports` the effects call: each room's trouble goes to its agent's incidents."""

    def __init__(
        self,
        *,
        engine: AsyncEngine,
        redis: Redis,
        policy: OutagePolicy,
        rules: Rules,
        cloud: Cloud | None,
        hook: Restarter | None,
        hook_url: str,
        hook_secret: str,
        http: httpx.AsyncClient,
        alerter: Alerter | None,
        clock: Callable[[], float],
        fresh_start: FreshStart,
        alert_routes: Mapping[str, EventRoute] | None = None,
    ) -> None:
        self.engine, self.redis, self.policy, self.rules = engine, redis, policy, rules
        self.cloud, self.hook, self.hook_url, self.hook_secret = cloud, hook, hook_url, hook_secret
        self.http, self.alerter, self.clock, self.fresh_start = http, alerter, clock, fresh_start
        self.alert_routes = alert_routes or {}
        self.by_agent: dict[str, AgentIncidents] = {}
        self.couriers: dict[str, Couriers] = {}
        self.handed_over = policy.observe  # act mode takes over observe mode's open incidents, once

    def agent_of(self, agent: str) -> str:
        """Whom a room's trouble is about (a notice from before views existed names none:
        `WARDEN_AGENT_NAME`'s)."""
        return agent or self.policy.agent_name

    def for_agent(self, agent: str, room: Room | None = None) -> AgentIncidents:
        """The incidents of `agent`, made at its first trouble with the restart target of its rule."""
        found = self.by_agent.get(agent)
        if found is not None:
            return found
        cloud, hook, hook_url = self.cloud, self.hook, self.hook_url
        rule = self.rules.rule_for_agent(agent, room.name if room else "", room.sip if room else False)
        if rule.cloud_agent_id or rule.deploy_hook_url:
            if rule.cloud_agent_id and cloud is not None:
                cloud = copy.copy(cloud)  # the same session, another agent id
                cloud.agent_id = rule.cloud_agent_id
                hook, hook_url = None, ""
            elif rule.deploy_hook_url:
                hook_url = rule.deploy_hook_url
                hook, cloud = DeployHookCaller(self.http, hook_url, self.hook_secret), None
        policy = replace(self.policy, agent_name=agent)
        doing = " and ".join(r.name for r in (cloud, hook) if r is not None)
        routes = AlertRoutes(self.alerter is not None, self.alert_routes, alerts.trying(doing))
        self.couriers[agent] = Couriers(
            self.engine,
            self._senders(routes, hook),
            retry_for=policy.retry_for,
            clock=self.clock,
            names=routes.names(),
        )

        async def fresh_start(rooms: Sequence[tuple[str, str]], incident_id: str, wait: float | None) -> None:
            await self.fresh_start(rooms, incident_id, agent, wait)

        made = AgentIncidents(
            engine=self.engine,
            window=OutageWindow(self.redis, agent, policy.outage_window),
            policy=policy,
            incident_policy=IncidentPolicy(
                cloud=cloud is not None,
                hook=hook is not None,
                rollback=policy.rollback,
                cooldown=policy.cooldown,
                lease=policy.lease,
                restart_grace=policy.restart_grace,
                doing=doing,
                routes=routes.routes(),
                observe=policy.observe,
                observe_alerts=policy.observe_alerts,
            ),
            deployment=deployment_key(
                agent,
                cloud=cloud is not None,
                cloud_agent_id=cloud.agent_id if cloud else "",
                hook=hook is not None,
                hook_url=hook_url,
            ),
            cloud=cloud,
            rows=outbox_rows(agent, routes, clock=self.clock, held_for=policy.lease),
            clock=self.clock,
            fresh_start=fresh_start,
            outcome=self.outcome,
            deliver=self.deliver,
        )
        self.by_agent[agent] = made
        return made

    def _senders(self, routes: AlertRoutes, hook: Restarter | None) -> dict[str, Route]:
        senders: dict[str, Route] = dict(routes.senders())
        alerter = self.alerter
        if alerter is not None:
            senders["Alert"] = lambda call: alerter.send(call.text)
        if hook is not None:
            senders["DeployHook"] = lambda call: hook.restart(
                call.agent_name,
                incident_id=call.incident_id,
                reason=call.reason,
                rooms=list(call.rooms),
                worker_ids=list(call.worker_ids),
            )
        return senders

    async def breach(
        self,
        room: Room,
        agent: str,
        reason: str,
        *,
        full: bool = False,
        unjoined: tuple[tuple[str, str], ...] = (),
    ) -> None:
        await self.for_agent(self.agent_of(agent), room).breach(room, reason, full=full, unjoined=unjoined)

    async def room_failed(self, room: Room, agent: str, reason: str) -> None:
        await self.for_agent(self.agent_of(agent), room).room_failed(room, reason)
        taken = fallback_line(room.view_for(agent))  # decided with the failure: noted once it is open
        if taken:
            await self.protected(room, agent, taken)

    async def room_recovered(self, room: Room, agent: str) -> None:
        await self.for_agent(self.agent_of(agent), room).room_recovered(room)

    async def fold(self, room: Room, agent: str, report: ReportBreach | ReportRecovered) -> bool:
        """Report a breach or a recovery from the room's own job, where that is cheap: a breach that
        only counts the room or joins it to the open incident this process knows, a recovery of a room
        while this process knows its agent's incident open. False, nothing decided: the report takes its
        own job (`report_to_incident`) — a breach that opens an incident or restarts, one LiveKit
        refused for want of capacity, a recovery with no incident known here."""
        handler = self.for_agent(self.agent_of(agent), room)
        if isinstance(report, ReportBreach):
            return await handler.breach(
                room, report.reason, full=report.full, unjoined=report.unjoined, fold=True
            )
        if not handler.knows_open():
            return False
        await handler.room_recovered(room)
        return True

    async def protected(self, room: Room, agent: str, what: str) -> None:
        """A line in the agent's open incident's log (none open: nothing) of what was done for the
        people of `room` (`workers.jobs.rooms.protect`); in observe mode, marked not carried out."""
        found = await incident_steps.open_incident(self.engine, self.agent_of(agent))
        if found is not None:
            line = f"room {mask_phone(room.name)}: {what}"
            done = not self.policy.observe
            await incidents.note(self.engine, found.id, self.clock(), "fallback", line, carried_out=done)

    async def by_hand(self, signal: Signal, incident_id: str, by: str) -> str:
        """An operator's acknowledgement (ACKNOWLEDGED) or restart (RESTART_ASKED) of incident
        `incident_id`, as a step of its agent's incident machine, carried out as any step is (its
        alerts through the outbox, its restart claimed for the deployment); the incident's state after."""
        found = await incidents.get_incident(self.engine, incident_id)
        if found is None:
            return "no incident"
        agent = self.for_agent(found.agent_name)
        applied = await agent.decide(Report(signal, self.clock(), by=by), incident_id=incident_id)
        await agent.carry(applied)
        return str(applied.incident.state) if applied is not None else "no incident"

    async def canary_failed(self, agent: str, reason: str, room: str) -> None:
        await self.for_agent(agent).canary_failed(reason, room)

    async def canary_passed(self, agent: str) -> None:
        await self.for_agent(agent).canary_passed()

    async def canary_full(self, agent: str, reason: str, room: str) -> None:
        await self.for_agent(agent).canary_full(reason, room)

    async def settle(self) -> None:
        """The sweep's look at every agent's incidents (`AgentIncidents.settle`), after act mode's hand-over
        of observe mode's incidents. One agent's failure is its own (`_alone`: logged, tried again at the
        next sweep; an agent whose hand-over failed is not settled before it is handed over): the others
        are settled. What ends the run (`workers.store.runs.ends_the_run`) ends the sweep's settling."""
        failed = set() if self.handed_over else await self.hand_over()
        agents = set(self.by_agent) | set(await incidents.open_agents(self.engine)) | {self.policy.agent_name}
        for agent in sorted(agents - failed):
            await _alone(agent, self.for_agent(agent).settle())

    async def hand_over(self) -> set[str]:
        """Act mode after observe mode (`workers.core.observing`, rule 3): the rooms waiting for the
        agent of each open incident observe mode decided in get a fresh start at once (their failures
        were re-dispatches never made), then the incident is resolved as observed (HANDED_OVER), its
        "resolved" alert sent on the routes an alert of it went out on (none: none); act decides
        afresh, its own incident, restart and alerts included. The agents whose hand-over failed (each
        alone, `_alone`), handed over at the next sweep."""
        failed = set()
        for incident_id, agent in await incidents.observed_open(self.engine):
            if not await _alone(agent, self._hand_over(incident_id, agent)):
                failed.add(agent)
        self.handed_over = not failed
        return failed

    async def _hand_over(self, incident_id: str, agent: str) -> bool:
        waiting = await incidents.waiting_rooms(self.engine, agent)
        await self.fresh_start(waiting, incident_id, agent, 0.0, observed=True)
        handler = self.for_agent(agent)
        routes, names = handler.incident_policy.routes, self.couriers[agent].names
        said = await alerted_at_hand_over(self.engine, incident_id, routes, names, self.clock())
        report = Report(Signal.HANDED_OVER, self.clock(), rooms=len(waiting), alerted=said)
        await handler.carry(await handler.decide(report, incident_id=incident_id))
        return True

    async def deliver(self, pending: Pending) -> None:
        """Try an outgoing call of the outbox once (`Couriers.send`); a deploy hook that landed, or was
        refused or given up, is its restart's outcome. Raises `UpstreamError` when the call is to be
        tried again later. In observe mode (one left from act mode) a deploy hook is not called, and
        an alert is not sent unless `observe_alerts`: noted, not carried out."""
        action = pending.action
        agent = (
            action.agent_name if isinstance(action, DeployHook | IncidentEvent) else self.policy.agent_name
        )
        self.for_agent(agent)
        assert isinstance(action, Alert | DeployHook | IncidentEvent), action
        if self.policy.observe and (isinstance(action, DeployHook) or not self.policy.observe_alerts):
            what = label(action, self.couriers[agent].names)
            line = f"{what}: not sent (observe mode)"
            await incidents.note(self.engine, action.incident_id, self.clock(), what, line, carried_out=False)
            return
        landed = await self.couriers[agent].send(pending)
        if isinstance(action, DeployHook):
            RESTARTS.labels(via="deploy hook", outcome="ok" if landed else "failed", agent=agent).inc()
            await self.outcome(action.incident_id, HOOK, landed)

    async def outcome(self, incident_id: str, leg: str, landed: bool) -> None:
        """One leg of the restart incident `incident_id` called has its outcome; once its deployment's
        restart has one, every agent's incident of that deployment hears it and carries out what it
        decides, and a Cloud deployment back sooner than the grace is reported to all of them."""
        applied = await incident_steps.restart_outcome(
            self.engine,
            incident_id,
            leg,
            landed,
            self.clock(),
            policy_of=lambda agent: self.for_agent(agent).incident_policy,
            rows_of=lambda agent: self.for_agent(agent).rows,
        )
        watching = [
            (self.for_agent(step.incident.agent_name), step.incident.id)
            for step in applied
            if WatchComeback() in step.decisions
        ]
        cloud = watching[0][0].cloud if watching else None
        first = watching[0][0] if watching else None
        # The deployment is watched from now on, while the steps are carried out (the waiting rooms'
        # fresh starts take seconds with a thousand rooms: a watch begun after them could see the
        # deployment running from its first poll, and tell nothing); its return is acted on after them.
        watch = (
            asyncio.create_task(comeback.when_back(cloud, first.agent, first.policy.restart_grace))
            if cloud is not None and first is not None
            else None
        )
        try:
            for step in applied:
                await self.for_agent(step.incident.agent_name).carry(step)
        except BaseException:
            if watch is not None:
                watch.cancel()
            raise
        if watch is None:
            return
        back = await watch
        if back is not None:
            for agent, watched in watching:
                await agent.back(watched, back)


async def _alone(agent: str, work: Awaitable[T]) -> T | None:
    """`work` on one agent's incidents; None when it failed on its own (`workers.store.runs.passed_over`:
    the sweep goes on with the other agents, and tries it again next time). What ends the run
    (`ends_the_run`: an outage, a `Retry` from recording a fresh start) ends the sweep's settling."""
    try:
        return await work
    except BaseException as exc:
        if ends_the_run(exc):
            raise
        passed_over("settle", "the incidents of agent", agent, exc)
        return None

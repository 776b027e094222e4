"""Escalation: when re-dispatching cannot help, restart the agent — once per outage — and tell people.

An outage is declared for the agent when a room exhausts its re-dispatches (or LiveKit refuses a call),
or sooner when `outage_rooms` rooms miss their SLA within `outage_window` seconds (a sliding window
in Redis, shared by every worker). The outage is an incident in the database; its steps are claimed
once each (`workers.store.incidents`), so many rooms, jobs and processes produce one alert and one restart:

1. open (or join) the incident; alert once that it opened, saying what Warden will do;
2. restart, unless another incident restarted this agent within `cooldown`: the LiveKit Cloud agent
   (`RestartAgent`, retried on 5xx) and/or the deploy hook. The restart is a leased step: claimed by a
   worker that dies before its outcome is recorded, it is taken up again `lease` seconds later (by the
   next breach, or by the sweep's `settle`); once restarted, or refused for good, never again;
3. after a restart, every room still waiting gets a fresh start (`AGENT_RESTARTED`: a confirm deadline
   `restart_grace` later, then presence check and re-dispatch — the restart brings back no lost job);
4. a room that fails again after the restart: one loud follow-up alert (and, with `rollback`, one
   `RollbackAgent`, leased like the restart) instead of a loop;
5. when the last room of the incident has its agent (or empties, or closes): resolved, one alert with
   the time to recovery.

Alerts (one per alert route that takes the step: Slack, PagerDuty, Opsgenie, the incident webhook;
`workers.escalation.alert_routes`) and the deploy hook are outgoing calls (`workers.core.outgoing`): outbox
rows written in the transaction of the step that decides them, tried at once, then by the sweep until
they land or `retry_for` seconds have passed (`workers.escalation.couriers`), each attempt in the
incident's log.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from workers.adapters.cloud import Cloud
from workers.core.errors import UpstreamError
from workers.core.outgoing import Alert, DeployHook, Outgoing
from workers.core.personal import mask_phone
from workers.core.room import Room
from workers.escalation import comeback
from workers.escalation.alert_routes import AlertRoutes, EventRoute
from workers.escalation.couriers import Couriers, Decided, Route
from workers.escalation.metrics import RESTARTS
from workers.escalation.policy import Alerter, EscalationPolicy, Restarter
from workers.store import incidents, outbox
from workers.store.incidents import Claim
from workers.store.outbox import Pending

log = logging.getLogger("warden.escalation")
RESTART, ROLLBACK = "restart_claimed_at", "rollback_claimed_at"


class Escalation:
    """Turns rooms' breaches, failures and recoveries into incidents, restarts and alerts."""

    def __init__(
        self,
        *,
        engine: AsyncEngine,
        redis: Redis,
        policy: EscalationPolicy,
        cloud: Cloud | None,
        hook: Restarter | None,
        alerter: Alerter | None,
        clock: Callable[[], float],
        fresh_start: comeback.FreshStart,
        alert_routes: Mapping[str, EventRoute] | None = None,
    ) -> None:
        self.engine, self.redis, self.policy = engine, redis, policy
        self.cloud, self.hook, self.alerter = cloud, hook, alerter
        self.clock, self.fresh_start = clock, fresh_start
        self.doing = (
            " and ".join(r.name for r in (cloud, hook) if r is not None)
            or "nothing to restart (no Cloud agent or deploy hook set)"
        )
        self.alerts = AlertRoutes(alerter is not None, alert_routes or {}, self.doing)
        routes: dict[str, Route] = dict(self.alerts.senders())
        if alerter is not None:
            routes["Alert"] = lambda call: alerter.send(call.text)
        if hook is not None:
            routes["DeployHook"] = lambda call: hook.restart(
                call.agent_name, incident_id=call.incident_id, reason=call.reason, rooms=list(call.rooms)
            )
        self.couriers = Couriers(
            engine, routes, retry_for=policy.retry_for, clock=clock, names=self.alerts.names()
        )
        # The open incident and the rooms this process has added to it: during an outage every breach
        # passes the whole window, and adding the same rooms again each time would cost a write per room.
        self._joined: tuple[str, set[str]] = ("", set())
        # Steps (incident, column) known to be taken, by this process or for good: not asked again.
        self._taken: set[tuple[str, str]] = set()

    async def breach(self, room: Room, reason: str) -> None:
        """A room missed its SLA: count it; enough of them within the window is an outage. The window's
        rooms are read only when this process does not know the open incident yet (during an outage
        every breach is over the threshold, and reading the whole window each time would cost O(n))."""
        key, now, window = self._breaches_key(), self.clock(), self.policy.outage_window
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.zadd(key, {f"{room.sid}|{room.name}": now})
            pipe.zremrangebyscore(key, "-inf", now - window)
            pipe.zcard(key)
            pipe.expire(key, int(window) + 1)
            count = (await pipe.execute())[2]
        if count < self.policy.outage_rooms:
            return
        why = f"{count} rooms missed their SLA within {window:g} s"
        known, joined = self._joined
        if known and await incidents.join_open(
            self.engine, known, self.policy.agent_name, (room.sid, room.name), now
        ):
            joined.add(room.sid)  # the open incident this process knows: one statement, no reads
            await self._steps(known, why, count, now)
            return
        await self._outage(await self._window(key), why)  # all of the window is in the incident

    async def _window(self, key: str) -> list[tuple[str, str]]:
        members = await self.redis.zrange(key, 0, -1)
        return [(sid, name) for sid, _, name in (m.decode().partition("|") for m in members)]

    def _breaches_key(self) -> str:
        return f"warden:breaches:{self.policy.agent_name}"

    async def room_failed(self, room: Room, reason: str) -> None:
        """A room exhausted its re-dispatches, or LiveKit refused: an outage on its own (and, failing
        after its incident's restart, not in the same breath, worth one loud follow-up)."""
        failed_at = self.clock()
        incident_id = await self._outage([(room.sid, room.name)], f"room {mask_phone(room.name)}: {reason}")
        incident = await incidents.get_incident(self.engine, incident_id)
        if incident is None or incident.restarted_at is None or incident.restarted_at >= failed_at:
            return
        now = self.clock()
        text = (
            f":warning: Warden incident {incident_id}: agent '{self.policy.agent_name}' still does not "
            f"come after the restart; {incident.waiting_rooms} room(s) waiting. A person is needed."
        )
        alerts = self._decided(now, Alert(incident_id, "followup", text))
        if await incidents.claim(self.engine, incident_id, "followup_claimed_at", now, then=alerts):
            await self._note(
                incident_id, "follow-up", f"room {mask_phone(room.name)} still has no agent after the restart"
            )
            await self._try_held(alerts)
        if (
            self.policy.rollback
            and self.cloud
            and await incidents.claim(self.engine, incident_id, ROLLBACK, now, lease=self.policy.lease)
        ):
            await self._rollback(incident_id)

    async def room_recovered(self, room: Room) -> None:
        """A room that had missed its SLA needs nothing now; the last one resolves its incident."""
        await self._settle(room.sid)

    async def settle(self) -> None:
        """Resolve the open incident if none of its rooms waits any more (the sweep asks, so that rooms
        which got their agent without ever missing an SLA do not keep an incident open), and take up
        its restart or rollback again if the worker that claimed it died before its outcome."""
        await self._settle("")
        now, lease = self.clock(), self.policy.lease
        for incident_id, column in await incidents.unfinished(
            self.engine, self.policy.agent_name, now, lease
        ):
            if not await incidents.claim(self.engine, incident_id, column, now, lease=lease):
                continue
            log.warning("incident %s: taking up its unfinished %s again", incident_id, column.split("_")[0])
            if column == RESTART:
                await self._restart(incident_id, [])
            else:
                await self._rollback(incident_id)

    async def deliver(self, pending: Pending) -> None:
        """Try an outgoing call of the outbox once (`Couriers.send`); a deploy hook that landed is the
        restart, one refused or given up may be the restart's failure. Raises `UpstreamError` when the
        call is to be tried again later."""
        landed = await self.couriers.send(pending)
        if not isinstance(pending.action, DeployHook):
            return
        incident_id = pending.action.incident_id
        RESTARTS.labels(
            via="deploy hook", outcome="ok" if landed else "failed", agent=self.policy.agent_name
        ).inc()
        if landed:
            await self._restarted(incident_id)
            return
        incident = await incidents.get_incident(self.engine, incident_id)
        cloud_failed = self.cloud is None or (incident is not None and incident.restart_done_at is not None)
        if incident is not None and incident.restarted_at is None and cloud_failed:
            await incidents.finish(self.engine, incident_id, RESTART, self.clock())
            await self._restart_failed(incident_id)

    async def _settle(self, room_sid: str) -> None:
        alerts: list[dict[str, Any]] = []

        def resolution(incident_id: str, opened_at: float, rooms: int) -> list[dict[str, Any]]:
            text = (
                f":white_check_mark: Warden incident {incident_id} resolved: agent "
                f"'{self.policy.agent_name}' is back; {rooms} room(s) recovered, "
                f"{self.clock() - opened_at:.0f} s after the incident opened."
            )
            alerts.extend(self._decided(self.clock(), Alert(incident_id, "resolved", text))([]))
            return alerts

        resolved = await incidents.room_recovered(
            self.engine, self.policy.agent_name, room_sid, self.clock(), then=resolution
        )
        if resolved is None or resolved.resolved_at is None:
            return
        # Breaches before the resolution belong to the incident just closed: counting them again would
        # open a new incident with the next single breach (and alert again), as long as the window lasts.
        await self.redis.delete(self._breaches_key())
        took = resolved.resolved_at - resolved.opened_at
        await self._note(resolved.id, "resolved", f"{len(resolved.rooms)} room(s) recovered in {took:.0f} s")
        for row in alerts:
            await self._try(outbox.held(row))

    async def _outage(self, rooms: list[tuple[str, str]], reason: str) -> str:
        now = self.clock()
        known_id, known = self._joined
        fresh = [(sid, name) for sid, name in rooms if sid not in known]
        incident_id, opened = await incidents.open_or_join(
            self.engine, self.policy.agent_name, reason, fresh, now
        )
        if incident_id != known_id:  # another incident since: all of the window's rooms belong to it
            if len(fresh) < len(rooms):
                await incidents.open_or_join(self.engine, self.policy.agent_name, reason, rooms, now)
            known = set()
        self._joined = (incident_id, known | {sid for sid, _ in rooms})
        if opened:
            log.error("incident %s opened for agent %s: %s", incident_id, self.policy.agent_name, reason)
        await self._steps(incident_id, reason, len(rooms), now)
        return incident_id

    async def _steps(self, incident_id: str, reason: str, rooms: int, now: float) -> None:
        """The incident's once-only steps: the opening alert, then the restart (each claimed once)."""
        text = (
            f":rotating_light: Warden incident {incident_id}: agent '{self.policy.agent_name}' is not "
            f"coming — {reason}. {rooms} room(s) affected so far. Warden is trying: {self.doing}."
        )
        alerts = self._decided(now, Alert(incident_id, "opened", text))
        if await self._claim(incident_id, "alerted_open_at", now, then=alerts):
            await self._try_held(alerts)
        hooks = self._decided(
            now, *([DeployHook(incident_id, self.policy.agent_name, reason)] if self.hook else [])
        )
        claimed = await self._claim(
            incident_id, RESTART, now, cooldown=self.policy.cooldown, lease=self.policy.lease, then=hooks
        )
        if claimed:
            await self._restart(incident_id, hooks.rows if claimed is Claim.FIRST else [])

    async def _claim(
        self,
        incident_id: str,
        column: str,
        now: float,
        *,
        cooldown: float = 0.0,
        lease: float = 0.0,
        then: Decided | None = None,
    ) -> Claim:
        """`incidents.claim`, remembering the steps taken for good or by this process, so that each
        breach of an outage does not ask the database again (the sweep takes up a step whose lease ran
        out)."""
        if (incident_id, column) in self._taken:
            return Claim.TAKEN
        claimed = await incidents.claim(
            self.engine, incident_id, column, now, cooldown=cooldown, lease=lease, then=then
        )
        if claimed is not Claim.LATER:
            self._taken.add((incident_id, column))
        return claimed

    async def _restart(self, incident_id: str, hooks: list[dict[str, Any]]) -> None:
        """The claimed restart: the deploy hook's first try (when this claim decided it; the sweep
        tries it again), and the Cloud restart, whose outcome is recorded unless it may still work."""
        if self.cloud is None and self.hook is None:
            await self._note(
                incident_id, "restart", "not attempted: no Cloud agent and no deploy hook configured"
            )
            await incidents.finish(self.engine, incident_id, RESTART, self.clock())
            return
        for row in hooks:
            await self._try(outbox.held(row))
        if self.cloud is None:
            return  # the deploy hook's delivery records the outcome
        cloud = self.cloud
        try:
            outcome = await self._retrying(lambda: cloud.restart(self.policy.agent_name))
        except UpstreamError as exc:
            RESTARTS.labels(via=cloud.name, outcome="failed", agent=self.policy.agent_name).inc()
            if exc.retryable:
                await self._note(
                    incident_id, cloud.name, f"failed: {exc}; tried again in {self.policy.lease:g} s"
                )
                return
            await self._note(incident_id, cloud.name, f"failed for good: {exc}")
            await incidents.finish(self.engine, incident_id, RESTART, self.clock())
            hook_waits = self.hook is not None and await outbox.waiting(
                self.engine, DeployHook(incident_id, "", "").id
            )
            if not hook_waits:
                await self._restart_failed(incident_id)
            return
        RESTARTS.labels(via=cloud.name, outcome="ok", agent=self.policy.agent_name).inc()
        await self._note(incident_id, cloud.name, outcome)
        await self._restarted(incident_id, watch=cloud)

    async def _restarted(self, incident_id: str, watch: Cloud | None = None) -> None:
        """A restart landed: the rooms waiting get their fresh start, once however many restarts land;
        after a Cloud restart, another with no wait as soon as the deployment is back (`comeback`)."""
        if await incidents.mark_restarted(self.engine, incident_id, self.clock()):
            grace = self.policy.restart_grace
            sooner = "as soon as its deployment runs, at most " if watch else ""
            text = (
                f":arrows_counterclockwise: Warden incident {incident_id}: agent "
                f"'{self.policy.agent_name}' restarted; waiting rooms are re-checked "
                f"{sooner}{grace:g} s later."
            )
            await self._fresh_start_all(incident_id)
            await self._announce(Alert(incident_id, "restarted", text))
            back = await comeback.when_back(watch, self.policy.agent_name, grace) if watch else None
            if back is not None:
                when = f"at once, its deployment running {back:.1f} s after"
                await self._fresh_start_all(incident_id, wait=0.0, when=when)

    async def _restart_failed(self, incident_id: str) -> None:
        text = f":x: Warden incident {incident_id}: the restart failed; see the incident's log."
        await self._announce(Alert(incident_id, "restart-failed", text))

    async def _announce(self, alert: Alert) -> None:
        """An alert decided outside a claim: written once whoever decides it again, tried at once."""
        row = self._decided(self.clock(), alert)([])
        for held in [await outbox.hold(self.engine, r) for r in row]:
            if held is not None:
                await self._try(held)

    async def _rollback(self, incident_id: str) -> None:
        """The claimed rollback; its outcome is recorded unless it may still work (then it is taken up
        again once the claim's lease runs out)."""
        assert self.cloud is not None
        cloud = self.cloud
        try:
            outcome = await self._retrying(lambda: cloud.rollback(self.policy.agent_name))
        except UpstreamError as exc:
            if exc.retryable:
                await self._note(
                    incident_id, "rollback", f"failed: {exc}; tried again in {self.policy.lease:g} s"
                )
                return
            await self._note(incident_id, "rollback", f"failed for good: {exc}")
            await incidents.finish(self.engine, incident_id, ROLLBACK, self.clock())
            return
        await self._note(incident_id, "rollback", outcome)
        await incidents.finish(self.engine, incident_id, ROLLBACK, self.clock())
        await self._fresh_start_all(incident_id)

    async def _fresh_start_all(self, incident_id: str, wait: float | None = None, when: str = "") -> None:
        rooms = await comeback.fresh_start_all(
            self.engine, self.policy.agent_name, incident_id, self.fresh_start, self.clock(), wait
        )
        when = when or f"{self.policy.restart_grace:g} s after"
        await self._note(incident_id, "re-dispatch", f"{rooms} waiting room(s) re-checked {when} it")

    async def _retrying(self, attempt: Callable[[], Awaitable[str]]) -> str:
        for n in range(self.policy.attempts):
            try:
                return await attempt()
            except UpstreamError as exc:
                if not exc.retryable or n + 1 == self.policy.attempts:
                    raise
                await asyncio.sleep(self.policy.backoff * 2**n)
        raise AssertionError("unreachable")

    async def _note(self, incident_id: str, action: str, outcome: str) -> None:
        await incidents.note(self.engine, incident_id, self.clock(), action, outcome)

    def _decided(self, now: float, *calls: Outgoing) -> Decided:
        """The outbox rows of `calls`, an alert's for each alert route that takes its step (none when no
        alert route is configured)."""
        agent = self.policy.agent_name
        return Decided(
            now, self.policy.lease, list(calls), lambda a, rooms: self.alerts.calls(a, agent, rooms, now)
        )

    async def _try_held(self, decided: Decided) -> None:
        for row in decided.rows:
            await self._try(outbox.held(row))

    async def _try(self, pending: Pending) -> None:
        """The first try of an outgoing call this process holds; the sweep tries again what failed."""
        try:
            await self.deliver(pending)
        except UpstreamError as exc:
            await outbox.failed(self.engine, pending, self.clock(), str(exc))
            return
        await outbox.done(self.engine, [pending.id])

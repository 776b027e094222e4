"""Escalation: when re-dispatching cannot help, restart the agent — once per outage — and tell people.

An outage is declared for the agent when a room exhausts its re-dispatches (or LiveKit refuses a call),
or sooner when `outage_rooms` rooms miss their SLA within `outage_window` seconds (a sliding window
in Redis, shared by every worker). The outage is an incident in the database; its steps are claimed
once each (`workers.store.incidents`), so many rooms, jobs and processes produce one alert and one restart:

1. open (or join) the incident; alert once that it opened, saying what Warden will do;
2. restart, unless a restart of this agent was claimed within `cooldown`: the LiveKit Cloud agent
   (`RestartAgent`) and/or the deploy hook, each retried on 5xx with backoff;
3. after a restart, every room still waiting gets a fresh start (`AGENT_RESTARTED`: a confirm deadline
   `restart_grace` later, then presence check and re-dispatch — the restart brings back no lost job);
4. a room that fails again after the restart: one loud follow-up alert (and, with `rollback`, one
   `RollbackAgent`) instead of a loop;
5. when the last room of the incident has its agent (or empties, or closes): resolved, one alert with
   the time to recovery.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from workers.adapters.cloud import CloudAgents
from workers.core.errors import UpstreamError
from workers.core.room import Room
from workers.jobs.metrics import RESTARTS
from workers.store import incidents

log = logging.getLogger("warden.escalation")


class Restarter(Protocol):
    name: str

    async def restart(self, agent_name: str, *, incident_id: str, reason: str, rooms: list[str]) -> str:
        """Restart the agent's workers; return what happened, or raise `UpstreamError`."""
        ...


class Alerter(Protocol):
    async def send(self, text: str) -> None: ...


@dataclass(frozen=True)
class EscalationPolicy:
    agent_name: str
    outage_rooms: int = 3
    outage_window: float = 60.0
    cooldown: float = 300.0
    restart_grace: float = 20.0
    rollback: bool = False
    attempts: int = 3
    backoff: float = 1.0


class Escalation:
    """Turns rooms' breaches, failures and recoveries into incidents, restarts and alerts."""

    def __init__(
        self,
        *,
        engine: AsyncEngine,
        redis: Redis,
        policy: EscalationPolicy,
        restarters: list[Restarter],
        cloud: CloudAgents | None,
        alerter: Alerter | None,
        clock: Callable[[], float],
        fresh_start: Callable[[str, str, str], Awaitable[None]],
    ) -> None:
        self.engine, self.redis, self.policy = engine, redis, policy
        self.restarters, self.cloud, self.alerter = restarters, cloud, alerter
        self.clock, self.fresh_start = clock, fresh_start
        # The open incident and the rooms this process has added to it: during an outage every breach
        # passes the whole window, and adding the same rooms again each time would cost a write per room.
        self._joined: tuple[str, set[str]] = ("", set())
        # Steps (incident, column) known to be claimed, by this process or another: not asked again.
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
        """A room exhausted its re-dispatches, or LiveKit refused: an outage on its own."""
        incident_id = await self._outage([(room.sid, room.name)], f"room {room.name}: {reason}")
        incident = await incidents.get_incident(self.engine, incident_id)
        if incident is None or incident.restarted_at is None:
            return
        now = self.clock()
        if await incidents.claim(self.engine, incident_id, "followup_claimed_at", now):
            await self._note(
                incident_id, "follow-up", f"room {room.name} still has no agent after the restart"
            )
            await self._alert(
                f":warning: Warden incident {incident_id}: agent '{self.policy.agent_name}' still does not "
                f"come after the restart; {incident.waiting_rooms} room(s) waiting. A person is needed."
            )
        if (
            self.policy.rollback
            and self.cloud
            and await incidents.claim(self.engine, incident_id, "rollback_claimed_at", now)
        ):
            try:
                outcome = await self._retrying(lambda: self.cloud.rollback(self.policy.agent_name))  # type: ignore[union-attr]
            except UpstreamError as exc:
                await self._note(incident_id, "rollback", f"failed: {exc}")
                return
            await self._note(incident_id, "rollback", outcome)
            await self._fresh_start_all(incident_id)

    async def room_recovered(self, room: Room) -> None:
        """A room that had missed its SLA needs nothing now; the last one resolves its incident."""
        await self._settle(room.sid)

    async def settle(self) -> None:
        """Resolve the open incident if none of its rooms waits any more (the sweep asks, so that rooms
        which got their agent without ever missing an SLA do not keep an incident open)."""
        await self._settle("")

    async def _settle(self, room_sid: str) -> None:
        resolved = await incidents.room_recovered(self.engine, self.policy.agent_name, room_sid, self.clock())
        if resolved is None or resolved.resolved_at is None:
            return
        # Breaches before the resolution belong to the incident just closed: counting them again would
        # open a new incident with the next single breach (and alert again), as long as the window lasts.
        await self.redis.delete(self._breaches_key())
        took = resolved.resolved_at - resolved.opened_at
        await self._note(resolved.id, "resolved", f"{len(resolved.rooms)} room(s) recovered in {took:.0f} s")
        await self._alert(
            f":white_check_mark: Warden incident {resolved.id} resolved: agent '{self.policy.agent_name}' is "
            f"back; {len(resolved.rooms)} room(s) recovered, {took:.0f} s after the incident opened."
        )

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
        if await self._claim(incident_id, "alerted_open_at", now):
            doing = (
                " and ".join(r.name for r in self.restarters)
                or "nothing to restart (no Cloud agent or deploy hook set)"
            )
            await self._alert(
                f":rotating_light: Warden incident {incident_id}: agent '{self.policy.agent_name}' is not "
                f"coming — {reason}. {rooms} room(s) affected so far. Warden is trying: {doing}."
            )
        if await self._claim(incident_id, "restart_claimed_at", now, cooldown=self.policy.cooldown):
            await self._restart(incident_id, reason)

    async def _claim(self, incident_id: str, column: str, now: float, *, cooldown: float = 0.0) -> bool:
        """`incidents.claim`, remembering steps that are taken for good, so that each breach of an
        outage does not ask the database again."""
        if (incident_id, column) in self._taken:
            return False
        claimed = await incidents.claim(self.engine, incident_id, column, now, cooldown=cooldown)
        if claimed is not None:
            self._taken.add((incident_id, column))
        return bool(claimed)

    async def _restart(self, incident_id: str, reason: str) -> None:
        if not self.restarters:
            await self._note(
                incident_id, "restart", "not attempted: no Cloud agent and no deploy hook configured"
            )
            return
        incident = await incidents.get_incident(self.engine, incident_id)
        names = [name for _, name, *_ in incident.rooms] if incident else []
        restarted = False
        for restarter in self.restarters:
            try:
                outcome = await self._retrying(
                    lambda r=restarter: r.restart(
                        self.policy.agent_name, incident_id=incident_id, reason=reason, rooms=names
                    )  # type: ignore[misc]
                )
            except UpstreamError as exc:
                RESTARTS.labels(via=restarter.name, outcome="failed").inc()
                await self._note(incident_id, restarter.name, f"failed: {exc}")
                continue
            RESTARTS.labels(via=restarter.name, outcome="ok").inc()
            restarted = True
            await self._note(incident_id, restarter.name, outcome)
        if not restarted:
            await self._alert(
                f":x: Warden incident {incident_id}: the restart failed; see the incident's log."
            )
            return
        await incidents.mark_restarted(self.engine, incident_id, self.clock())
        await self._fresh_start_all(incident_id)

    async def _fresh_start_all(self, incident_id: str) -> None:
        waiting = await incidents.waiting_rooms(self.engine)
        # Every room still waiting for the agent is part of the outage, and of its resolution.
        await incidents.open_or_join(
            self.engine, self.policy.agent_name, "waiting at the restart", waiting, self.clock()
        )
        for sid, name in waiting:
            await self.fresh_start(sid, name, incident_id)
        await self._note(
            incident_id,
            "re-dispatch",
            f"{len(waiting)} waiting room(s) re-checked {self.policy.restart_grace:g} s after it",
        )

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

    async def _alert(self, text: str) -> None:
        if self.alerter is None:
            return
        try:
            await self._retrying(lambda: _sent(self.alerter, text))  # type: ignore[arg-type]
        except UpstreamError as exc:
            log.warning("alert not delivered: %s", exc)


async def _sent(alerter: Alerter, text: str) -> str:
    await alerter.send(text)
    return "sent"

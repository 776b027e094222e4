"""One agent's incidents: rooms' troubles reported to the incident machine, and its decisions carried
out. When re-dispatching cannot help, restart the agent's deployment, once per outage, and tell people.

An outage is reported when a room exhausts its re-dispatches (or LiveKit refuses a call), or sooner
when `outage_rooms` rooms miss their SLA within `outage_window` seconds (`workers.escalation.window`).
Each report is a step of the incident machine (`workers.core.incident`, whose opening comment states
the rules), taken in the database under its locks (`workers.store.incident_steps`), so that many rooms,
jobs and processes make one incident, one restart of a deployment and one alert per step.

The decisions are carried out here, after the step's commit: the alerts and the deploy hook are outbox
rows written with the step, tried once at once, then by the sweep until they land
(`workers.escalation.couriers`); the Cloud restart and the rollback are called with retries on 5xx,
each attempt a line of the incident's log, their outcome reported back (a retryable failure is left
to the lease, which the sweep takes up); the waiting rooms get their fresh starts
(`workers.escalation.comeback`). A restart's outcome is its deployment's, and goes through
`workers.escalation.agents.Incidents`, which tells every agent of that deployment.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence

from sqlalchemy.ext.asyncio import AsyncEngine

from workers.adapters.cloud import Cloud
from workers.core.errors import UpstreamError
from workers.core.incident import (
    CLOUD,
    INCIDENT,
    FreshStarts,
    IncidentPolicy,
    IncidentState,
    Note,
    Report,
    Resolve,
    Restart,
    Rollback,
    Signal,
    ignore,
)
from workers.core.observing import counted, mode
from workers.core.personal import mask_phone
from workers.core.room import WAITING_PHASES, Recovery, Room
from workers.escalation import comeback
from workers.escalation.metrics import CAPACITY_REFUSALS, DECISIONS, RESTARTS
from workers.escalation.policy import OutagePolicy
from workers.escalation.window import OutageWindow
from workers.store import incident_steps, incidents, outbox
from workers.store.incident_steps import Applied, Rows
from workers.store.outbox import Pending

log = logging.getLogger("warden.escalation")

Outcome = Callable[[str, str, bool], Awaitable[None]]  # incident id, leg, landed
Deliver = Callable[[Pending], Awaitable[None]]


def needs(room: Room, agent: str) -> bool:
    """Does `room` still need `agent`: its people wait for it, or Warden is at work on it (as
    `workers.store.room_agents.needs` says of the stored room)? A room with no part for it (a breach of
    its own watch) is taken to."""
    view = room.view(agent)
    return view is None or view.phase in WAITING_PHASES or view.recovery is not Recovery.NONE


class AgentIncidents:
    """Turns one agent's rooms' breaches, failures and recoveries into incident steps; carries them out."""

    def __init__(
        self,
        *,
        engine: AsyncEngine,
        window: OutageWindow,
        policy: OutagePolicy,
        incident_policy: IncidentPolicy,
        deployment: str,
        cloud: Cloud | None,
        rows: Rows,
        clock: Callable[[], float],
        fresh_start: comeback.FreshStart,
        outcome: Outcome,
        deliver: Deliver,
    ) -> None:
        self.engine, self.window, self.policy = engine, window, policy
        self.incident_policy, self.deployment, self.cloud = incident_policy, deployment, cloud
        self.rows, self.clock, self.fresh_start = rows, clock, fresh_start
        self.outcome, self.deliver = outcome, deliver
        self.agent = policy.agent_name
        # The open incident this process knows, its state, and the rooms this process added to it: during
        # an outage every breach passes the whole window, and adding the same rooms again each time, or
        # asking for a step already taken, would cost a write per room.
        self._known: tuple[str, IncidentState, set[str]] = ("", IncidentState.NEW, set())

    async def breach(
        self,
        room: Room,
        reason: str,
        *,
        full: bool = False,
        unjoined: tuple[tuple[str, str], ...] = (),
        fold: bool = False,
    ) -> bool:
        """A room missed its SLA: count it; enough of them within the window is an outage. Past its
        restart's claim, the incident this process knows only gains the room (one statement). A room
        whose job LiveKit refused for want of capacity (`full`) goes to the capacity incident instead;
        the jobs workers took for it whose agent never came (`unjoined`) are counted per worker. A room
        that no longer needs the agent (`room` is as it stands now: the report ran late, after its
        recovery) counts for nothing: its outage, if any, was resolved with it, and a new one opened on
        late reports would page people for it again.
        With `fold` (the room's own job reporting), only what is cheap is done: False, and nothing
        decided, where the report takes a step of the incident machine (open, restart, capacity), which
        is its own job's (`report_to_incident`) to take; True once the breach is reported."""
        if not needs(room, self.agent):
            log.info("room %s: breach reported after it was served; not counted", mask_phone(room.name))
            return True
        if full and fold:
            return False
        now = self.clock()
        workers = await self.window.unjoined(room.sid, unjoined, now)  # this room's jobs counted first
        if full:
            CAPACITY_REFUSALS.labels(agent=self.agent).inc()
            why = f"room {mask_phone(room.name)}: LiveKit refused its job for want of capacity"
            report = Report(Signal.CAPACITY, now, reason=why, rooms=1, room=room.name, workers=workers)
            await self.carry(await self._outage(report, [(room.sid, room.name)]))
            return True
        count = await self.window.count(room.sid, room.name, now)
        if count < self.policy.outage_rooms:
            return True
        # read again: every room counted before this one counted its jobs first (reports run concurrently)
        workers = await self.window.unjoined(room.sid, (), now)
        why = f"{count} rooms missed their SLA within {self.policy.outage_window:g} s"
        known, state, joined = self._known
        if (
            not workers
            and INCIDENT[(state, Signal.OUTAGE)] is ignore
            and await incidents.join_open(self.engine, known, self.agent, (room.sid, room.name), now)
        ):
            joined.add(room.sid)
            return True
        if fold:
            return False
        rooms = await self.window.rooms()  # all of the window is in the incident
        report = Report(Signal.OUTAGE, now, reason=why, rooms=len(rooms), workers=workers)
        await self.carry(await self._outage(report, rooms))
        return True

    async def room_failed(self, room: Room, reason: str) -> None:
        """A room exhausted its re-dispatches, or LiveKit refused: an outage on its own (and, failing after
        its incident's restart, worth one loud follow-up)."""
        why = f"room {mask_phone(room.name)}: {reason}"
        report = Report(Signal.ROOM_FAILED, self.clock(), reason=why, rooms=1, room=room.name)
        await self.carry(await self._outage(report, [(room.sid, room.name)]))

    async def canary_failed(self, reason: str, room: str) -> None:
        """The agent's canaries failed enough times in a row: an outage with no room in it."""
        report = Report(Signal.CANARY_FAILED, self.clock(), reason=reason, room=room)
        await self.carry(await self._outage(report, []))

    async def canary_full(self, reason: str, room: str) -> None:
        """A canary's job was refused for want of capacity: the agent's capacity incident (opened, or
        the open one turned one and kept open until a canary passes), never an outage's restart."""
        CAPACITY_REFUSALS.labels(agent=self.agent).inc()
        report = Report(Signal.CAPACITY, self.clock(), reason=reason, room=room, canary=True)
        await self.carry(await self._outage(report, []))

    async def canary_passed(self) -> None:
        """A canary passed: the open incident is no longer kept open by canaries, and is resolved when
        no room of it waits."""
        applied = await incidents.room_recovered(
            self.engine,
            self.agent,
            "",
            self.clock(),
            policy=self.incident_policy,
            rows=self.rows,
            canary_passed=True,
        )
        await self.carry(applied)

    async def room_recovered(self, room: Room) -> None:
        """A room that had missed its SLA needs nothing now; the last one resolves its incident."""
        await self._settle(room.sid)

    def knows_open(self) -> bool:
        """Whether this process knows an open incident of the agent (its last step here left one open)."""
        known, state, _ = self._known
        return bool(known) and state not in (IncidentState.NEW, IncidentState.RESOLVED)

    async def settle(self) -> None:
        """The sweep: resolve the open incident if none of its rooms waits any more (rooms that got their
        agent without ever missing an SLA do not keep it open), and let the machine look at it again
        (`SWEPT`): a restart or rollback whose caller died is claimed and called again."""
        await self._settle("")
        applied = await self.decide(Report(Signal.SWEPT, self.clock()))
        if applied is not None and any(isinstance(d, Restart | Rollback) for d in applied.decisions):
            log.warning(
                "incident %s: taking up its unfinished restart or rollback again", applied.incident.id
            )
        await self.carry(applied)

    async def decide(
        self, report: Report, rooms: Sequence[tuple[str, str]] = (), incident_id: str = ""
    ) -> Applied | None:
        """The incident machine's step on `report`, taken and written (nothing carried out yet)."""
        return await incident_steps.report(
            self.engine,
            self.agent,
            report,
            self.incident_policy,
            deployment=self.deployment,
            incident_id=incident_id,
            rooms=rooms,
            rows=self.rows,
        )

    async def carry(self, applied: Applied | None) -> None:
        """Carry out what a step decided: first tries of its outbox rows, then its calls and fresh
        starts. (A comeback watch is the deployment's: `Incidents` keeps one for all its agents.)"""
        if applied is None:
            return
        known, _, joined = self._known
        self._known = (
            applied.incident.id,
            applied.incident.state,
            joined if known == applied.incident.id else set(),
        )
        for name in counted(applied.decisions):
            DECISIONS.labels(action=name, mode=mode(self.incident_policy.observe)).inc()
        for row in applied.rows:
            await self._try(outbox.held(row))
        for decision in applied.decisions:
            if isinstance(decision, Restart) and CLOUD in decision.legs:
                await self._restart(applied.incident.id)
            elif isinstance(decision, Rollback):
                await self._rollback(applied.incident.id)
            elif isinstance(decision, FreshStarts):
                await self._fresh_starts(applied.incident.id, decision)
            elif isinstance(decision, Resolve):
                await self.window.forget()

    async def back(self, incident_id: str, after: float) -> None:
        """The Cloud deployment runs again, `after` seconds after its restart."""
        await self.carry(
            await self.decide(
                Report(Signal.RUNNING_AGAIN, self.clock(), after=after), incident_id=incident_id
            )
        )

    async def _outage(self, report: Report, rooms: list[tuple[str, str]]) -> Applied | None:
        """The outage report, with the rooms this process has not added to the incident it knows yet."""
        known, _, joined = self._known
        fresh = [(sid, name) for sid, name in rooms if sid not in joined]
        applied = await self.decide(report, fresh)
        if applied is None:
            return None
        if applied.incident.id != known and len(fresh) < len(rooms):  # another incident since: all of them
            await incidents.open_or_join(self.engine, self.agent, report.reason, rooms, report.at)
            joined = set()
        self._known = (applied.incident.id, applied.incident.state, joined | {sid for sid, _ in rooms})
        if any(isinstance(d, Note) and d.action == "opened" for d in applied.decisions):
            log.error("incident %s opened for agent %s: %s", applied.incident.id, self.agent, report.reason)
            if self.incident_policy.observe:  # act mode hands it over, whatever it decided (`observing`)
                line = "opened in observe mode: nothing it decides is carried out"
                await incidents.note(
                    self.engine, applied.incident.id, report.at, incidents.OBSERVE_MODE, line
                )
        return applied

    async def _settle(self, room_sid: str) -> None:
        applied = await incidents.room_recovered(
            self.engine, self.agent, room_sid, self.clock(), policy=self.incident_policy, rows=self.rows
        )
        await self.carry(applied)

    async def _restart(self, incident_id: str) -> None:
        """The claimed Cloud restart (the deploy hook is an outbox row of the step); its outcome is
        reported unless it may still work (then the sweep claims it again once the lease runs out)."""
        assert self.cloud is not None  # the machine calls the Cloud only when there is one
        cloud = self.cloud
        try:
            outcome = await self._retrying(lambda: cloud.restart(self.agent))
        except UpstreamError as exc:
            RESTARTS.labels(via=cloud.name, outcome="failed", agent=self.agent).inc()
            if exc.retryable:
                await self._note(
                    incident_id, cloud.name, f"failed: {exc}; tried again in {self.policy.lease:g} s"
                )
                return
            await self._note(incident_id, cloud.name, f"failed for good: {exc}")
            await self.outcome(incident_id, CLOUD, False)
            return
        RESTARTS.labels(via=cloud.name, outcome="ok", agent=self.agent).inc()
        await self._note(incident_id, cloud.name, outcome)
        await self.outcome(incident_id, CLOUD, True)

    async def _rollback(self, incident_id: str) -> None:
        """The claimed rollback; its outcome is reported unless it may still work (then it is claimed
        again once the lease runs out)."""
        assert self.cloud is not None  # the machine rolls back a Cloud agent only
        cloud = self.cloud
        try:
            outcome = await self._retrying(lambda: cloud.rollback(self.agent))
        except UpstreamError as exc:
            if exc.retryable:
                await self._note(
                    incident_id, "rollback", f"failed: {exc}; tried again in {self.policy.lease:g} s"
                )
                return
            await self._note(incident_id, "rollback", f"failed for good: {exc}")
            landed = False
        else:
            await self._note(incident_id, "rollback", outcome)
            landed = True
        report = Report(Signal.ROLLBACK_DONE, self.clock(), landed=landed)
        await self.carry(await self.decide(report, incident_id=incident_id))

    async def _fresh_starts(self, incident_id: str, decision: FreshStarts) -> None:
        rooms = await comeback.fresh_start_all(
            self.engine, self.agent, incident_id, self.fresh_start, self.clock(), decision.wait
        )
        await self._note(incident_id, "re-dispatch", f"{rooms} waiting room(s) re-checked {decision.when} it")

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

    async def _try(self, pending: Pending) -> None:
        """The first try of an outgoing call this process holds; the sweep tries again what failed."""
        try:
            await self.deliver(pending)
        except UpstreamError as exc:
            await outbox.failed(self.engine, pending, self.clock(), str(exc))
            return
        await outbox.done(self.engine, [pending.id])

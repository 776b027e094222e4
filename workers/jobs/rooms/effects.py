"""Carry out the state machine's actions. One `Effects.execute` dispatches each action to an adapter.

Questions (`CheckPresence`, `Evict`, `Redispatch`) are answered with one of Warden's own events, which
the caller records and folds in like any other; notices (`ScheduleDeadline`, `Dispatch`, `ReportFailed`)
have no answer. A LiveKit refusal (4xx) is answered with UPSTREAM_FAILED; a retryable failure (5xx,
timeout) raises `UpstreamError` so that the job backs off and tries the same step again.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Protocol, TypeVar

from workers.adapters.livekit import NOT_FOUND, Dispatcher, Observed, Presence, Protector
from workers.core.errors import UpstreamError
from workers.core.events import Event, EventKind, Fact, internal
from workers.core.fallback import FAILED_REASON
from workers.core.incident_values import Signal
from workers.core.observing import carried_out, would
from workers.core.personal import mask_phone
from workers.core.protecting import DispatchFallback, RemoveFallback, SendStatus, TransferCaller
from workers.core.room import (
    Action,
    CheckPresence,
    Dispatch,
    Evict,
    Redispatch,
    ReportBreach,
    ReportFailed,
    ReportRecovered,
    Room,
    ScheduleDeadline,
)
from workers.core.rules import Rules
from workers.jobs.rooms.protect import carry_out
from workers.queue.enqueue import JobQueue
from workers.queue.jobs import queue_deadline
from workers.store.outbox import Pending

log = logging.getLogger("warden.effects")
T = TypeVar("T")


class IncidentReports(Protocol):
    """Where rooms' troubles go beyond re-dispatching: their agents' incidents
    (`workers.escalation.agents.Incidents`)."""

    async def breach(
        self,
        room: Room,
        agent: str,
        reason: str,
        *,
        full: bool = False,
        unjoined: tuple[tuple[str, str], ...] = (),
    ) -> None:
        """The room missed its SLA for `agent` (`full`: LiveKit refused its job for want of capacity;
        `unjoined`: the (dispatch, worker) of jobs workers took for it whose agent never came)."""
        ...

    async def room_failed(self, room: Room, agent: str, reason: str) -> None:
        """Re-dispatching could not bring this room `agent`."""
        ...

    async def room_recovered(self, room: Room, agent: str) -> None:
        """A room that had missed its SLA for `agent` needs nothing any more."""
        ...

    async def fold(self, room: Room, agent: str, report: ReportBreach | ReportRecovered) -> bool:
        """Report a breach or a recovery from the room's own job where that is cheap and safe; False,
        nothing decided, where the report needs a job of its own (`report_to_incident`)."""
        ...

    async def protected(self, room: Room, agent: str, what: str) -> None:
        """What was done for the people of `room` while `agent` could not be brought back (a fallback
        agent, a transfer): a line in the agent's open incident's log, if one is open."""
        ...

    async def by_hand(self, signal: Signal, incident_id: str, by: str) -> str:
        """An operator's acknowledgement or restart of an incident (issue 28); the incident's state after."""
        ...

    async def settle(self) -> None:
        """Periodically: resolve what needs resolving although no room reported it, and take up the
        steps whose worker died."""
        ...

    async def deliver(self, pending: Pending) -> None:
        """Try an outgoing call of the outbox (an alert, a deploy hook) once; raise `UpstreamError` when
        it is to be tried again later."""
        ...


class Effects:
    """The adapters the actions need, the queue their timers and escalation jobs go to, and the clock
    that dates their answers."""

    def __init__(
        self,
        *,
        presence: Presence,
        dispatcher: Dispatcher,
        enqueuer: JobQueue,
        incidents: IncidentReports,
        clock: Callable[[], float],
        protector: Protector | None = None,
        rules: Rules | None = None,
    ) -> None:
        self.protector = protector
        self.rules = rules or Rules()
        self.presence = presence
        self.dispatcher = dispatcher
        self.enqueuer = enqueuer
        self.incidents = incidents
        self.clock = clock

    async def execute(self, action: Action, room: Room) -> Event | None:
        """Do `action` for `room`; return the answer to record, if the action asks a question. Answers
        and escalation name the expected agent the action is about (`Room.view_for`)."""
        agent = room.view_for(action.agent).agent
        if not carried_out(action, self.rules.observe):
            return await self._observed(action, room, agent)
        match action:
            case ScheduleDeadline(attempt=attempt, at=at):
                # ARQ measures the deferral against the real clock; a deadline already past runs now.
                # Numbers are never reused in a room, so a job id already known is this deadline's own
                # job (queued, or running and about to find it due); said, not dropped: should that job
                # end without acting, the sweep queues the deadline again once it is overdue.
                if not await queue_deadline(self.enqueuer, room.sid, attempt, at):
                    log.info(
                        "deadline %s of room %s: its job is already queued or running", attempt, room.name
                    )
                return None
            case ReportFailed(reason=reason):
                await self.incidents.room_failed(room, agent, reason)
                return None
            case ReportBreach(reason=reason, full=full, unjoined=unjoined):
                await self.incidents.breach(room, agent, reason, full=full, unjoined=unjoined)
                return None
            case ReportRecovered():
                await self.incidents.room_recovered(room, agent)
                return None
            case Dispatch(agent_name=agent_name):
                created = await self._refusable(self.dispatcher.redispatch(room.name, agent_name, "", ()))
                if isinstance(created, UpstreamError):
                    log.warning("first dispatch for room %s refused: %s", room.name, created)
                return None
            case DispatchFallback() | TransferCaller() | RemoveFallback() | SendStatus():
                done = await carry_out(
                    action,
                    room,
                    presence=self.presence,
                    dispatcher=self.dispatcher,
                    protector=self.protector,
                    rules=self.rules,
                )
                # a fallback for a failed part is noted by its failure's report, which opens the incident
                failed = getattr(action, "reason", "") == FAILED_REASON and "refused" not in done
                if done and not isinstance(action, SendStatus) and not failed:
                    await self.incidents.protected(room, agent, done)
                return None
            case CheckPresence(attempt=attempt):
                observed = await self._refusable(self.presence.observe(room.name))
                return self.presence_answer(room, agent, attempt, observed)
            case Evict(attempt=attempt, identity=identity):
                evicted = await self._refusable(self.dispatcher.evict(room.name, identity))
                if isinstance(evicted, UpstreamError):
                    return self._failed(room, agent, attempt, evicted)
                fact = Fact(attempt=attempt, at=self.clock(), agent=agent)
                return self._event(room, EventKind.AGENT_EVICTED, fact)
            case Redispatch(attempt=attempt, agent_name=agent_name, metadata=metadata, stale=stale):
                dispatched = await self._refusable(
                    self.dispatcher.redispatch(room.name, agent_name, metadata, stale, action.attributes)
                )
                if isinstance(dispatched, UpstreamError) and dispatched.code == NOT_FOUND:
                    return self._gone(room)  # the room ended meanwhile: nothing to dispatch to
                if isinstance(dispatched, UpstreamError):
                    return self._failed(room, agent, attempt, dispatched)
                fact = Fact(attempt=attempt, at=self.clock(), dispatch_id=dispatched, agent=agent)
                return self._event(room, EventKind.AGENT_DISPATCHED, fact)
        raise TypeError(f"unknown action {action!r}")

    def presence_answer(
        self, room: Room, agent: str, attempt: int, observed: Observed | UpstreamError
    ) -> Event:
        """The answer to `CheckPresence(attempt)` for `agent`: what LiveKit said (a refusal: failed)."""
        if isinstance(observed, UpstreamError):
            return self._failed(room, agent, attempt, observed)
        exists, participants, dispatches = observed
        fact = Fact(attempt, self.clock(), exists, participants, dispatches, agent=agent)
        return self._event(room, EventKind.PRESENCE_OBSERVED, fact)

    async def _observed(self, action: Action, room: Room, agent: str) -> Event | None:
        """Observe mode, the one gate of a room's actions that change LiveKit (`workers.core.observing`):
        nothing is called. A removal or a re-dispatch is answered as made, marked not carried out (no
        dispatch id: nothing to wait on), so the room goes on as act mode's would; a fallback's line
        goes to the agent's open incident, marked not carried out too."""
        name = type(action).__name__
        log.info(
            "room %s: %s for %s (observe mode: not carried out)", mask_phone(room.name), would(name), agent
        )
        match action:
            case Evict(attempt=attempt):
                fact = Fact(attempt=attempt, at=self.clock(), agent=agent, carried_out=False)
                return self._event(room, EventKind.AGENT_EVICTED, fact)
            case Redispatch(attempt=attempt):
                fact = Fact(attempt=attempt, at=self.clock(), agent=agent, carried_out=False)
                return self._event(room, EventKind.AGENT_DISPATCHED, fact)
            case DispatchFallback() | TransferCaller() | RemoveFallback():
                if getattr(action, "reason", "") != FAILED_REASON:  # a failure's is noted with it
                    await self.incidents.protected(room, agent, would(name))
        return None

    async def fold_report(self, action: ReportBreach | ReportRecovered, room: Room) -> bool:
        """Report `action` to the incidents from the room's own job (`IncidentReports.fold`), as
        `execute` would; False where it needs its own job."""
        if not carried_out(action, self.rules.observe):
            return False
        return await self.incidents.fold(room, room.view_for(action.agent).agent, action)

    @staticmethod
    async def _refusable(call: Awaitable[T]) -> T | UpstreamError:
        """Await `call`; a final (4xx) refusal comes back as a value, a retryable failure is raised."""
        try:
            return await call
        except UpstreamError as exc:
            if exc.retryable:
                raise
            return exc

    def _gone(self, room: Room) -> Event:
        """LiveKit no longer has the room: as reconciliation would find it."""
        fact = Fact(at=self.clock(), room_exists=False)
        return internal(
            EventKind.RECONCILED, f"reconciled:{room.sid}:{fact.at:.3f}", room.sid, room.name, fact
        )

    def _failed(self, room: Room, agent: str, attempt: int, error: UpstreamError) -> Event:
        return self._event(
            room,
            EventKind.UPSTREAM_FAILED,
            Fact(attempt=attempt, at=self.clock(), error=str(error), agent=agent),
        )

    @staticmethod
    def _event(room: Room, kind: EventKind, fact: Fact) -> Event:
        return internal(kind, f"{kind}:{room.sid}:{fact.attempt}", room.sid, room.name, fact)

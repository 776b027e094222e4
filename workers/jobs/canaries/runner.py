"""Canaries carried out (`workers.core.canary` says when and what counts): for each agent whose canary is
due, one run at a time across all workers, under a lock in Redis. A run creates its room, dispatches
the agent with the metadata `{"warden_canary": true}`, waits for it, deletes the room, and reports the
verdict to the agent's incidents.

A run the agent did not come to lists its dispatch (`ListDispatch`, before the room is deleted: LiveKit
lists dispatches only while the room exists) and `canary.classify` tells why: a job refused for want of
capacity makes it `capacity`, reported to the agent's capacity incident (`canary_full`), never counted
towards the outage that restarts a deployment; any other no-show is a failure, as before.

The wait ends at the agent's `participant_joined` webhook (`heard` pushes it to the run's list in
Redis, which the run pops), or at a look at the room's participants every `POLL_SECONDS` (a quarter
of the SLA when that is shorter) should a webhook be lost, or `canary.LATE_FACTOR` times the SLA after the
dispatch: an agent later than its SLA fails the run but its time is still recorded.

A run whose worker died is finished by the agent's next run (`interrupted`, its room deleted), which
also deletes any room of the agent's canaries LiveKit still has: none is left behind.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable, Sequence
from typing import Protocol

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from workers.adapters.livekit import CanaryRooms
from workers.core import canary
from workers.core.canary import CanaryPolicy, Outcome, Run
from workers.core.errors import UpstreamError
from workers.core.events import DispatchInfo, Event, EventKind
from workers.core.personal import AGENT_KIND
from workers.jobs.canaries.metrics import count_run
from workers.jobs.runtime.retry import each_alone
from workers.store import canary_runs, incident_steps

log = logging.getLogger("warden.canary")

POLL_SECONDS = 2.0
ERROR = "error"  # a tick's outcome of a canary that failed on its own (`Canaries.tick`)
MIN_BLOCK_SECONDS = 0.01
ARRIVALS_KEPT_SECONDS = 600
_RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"


class CanaryReports(Protocol):
    """Where verdicts go: the agent's incidents (`workers.escalation.agents.Incidents`)."""

    async def canary_failed(self, agent: str, reason: str, room: str) -> None: ...

    async def canary_passed(self, agent: str) -> None: ...

    async def canary_full(self, agent: str, reason: str, room: str) -> None: ...


def lease_seconds(policy: CanaryPolicy, call_timeout: float) -> float:
    """How long a run may hold its agent's lock: its wait (or the job listing lag, when longer: a failed
    run may look at its dispatch again once that long after it), its calls to LiveKit (list, create,
    dispatch, delete, a last look, two listings of its dispatch; each at most `call_timeout`) and its
    writes (a call's worth). A worker that dies holding it delays the agent's next canary by at most
    this long (70 s at a 15-s SLA)."""
    return max(canary.wait_seconds(policy), canary.JOB_LISTING_LAG) + 8 * call_timeout


def arrivals_key(room: str) -> str:
    return f"warden:canary:arrived:{room}"


async def heard(redis: Redis, event: Event) -> str:
    """A webhook of a canary room: an agent's arrival (or departure: it came) is passed to the run
    waiting for it; the rest is not a user room's business and is dropped."""
    who = event.participant
    # An agent leaving came (it may leave within milliseconds, and its joining webhook be lost).
    # livekit-server sends `participant_connection_aborted` for one that left before its connection was
    # counted as up (2 of 71 visits of an agent leaving at once, in the lab): it came too.
    came = event.kind in (
        EventKind.PARTICIPANT_JOINED,
        EventKind.PARTICIPANT_LEFT,
        EventKind.PARTICIPANT_CONNECTION_ABORTED,
    )
    if came and who is not None and who.kind == AGENT_KIND:
        key = arrivals_key(event.room_name)
        async with redis.pipeline(transaction=True) as pipe:
            pipe.rpush(key, who.agent_name)
            pipe.expire(key, ARRIVALS_KEPT_SECONDS)
            await pipe.execute()
        return "canary arrival"
    return "canary"


class Canaries:
    """The canaries of the configured agents, run when due."""

    def __init__(
        self,
        *,
        engine: AsyncEngine,
        redis: Redis,
        rooms: CanaryRooms,
        reports: CanaryReports,
        policies: Sequence[CanaryPolicy],
        clock: Callable[[], float],
        call_timeout: float = 5.0,
        listing_lag: float = canary.JOB_LISTING_LAG,
    ) -> None:
        self.engine, self.redis, self.rooms, self.reports = engine, redis, rooms, reports
        self.policies, self.clock, self.call_timeout = tuple(policies), clock, call_timeout
        self.listing_lag = listing_lag  # `canary.look_again`'s (tests shorten it)

    async def tick(self) -> dict[str, str]:
        """Run every canary that is due, together; what each agent's came to ("error": it failed on its
        own, logged and counted, the others' outcomes kept; an outage, the database or Redis unavailable,
        ends the tick: `workers.jobs.runtime.retry.each_alone`)."""
        done = await asyncio.gather(*(self.run_if_due(p) for p in self.policies), return_exceptions=True)
        agents = [p.agent for p in self.policies]
        outcomes = each_alone("canaries", "the canary of", agents, done)
        return {agent: outcome or ERROR for agent, outcome in zip(agents, outcomes, strict=True)}

    async def run_if_due(self, policy: CanaryPolicy) -> str:
        """The agent's canary, if it is due and no other worker runs one: "not due", "busy", or the
        run's outcome."""
        if not await self._due(policy):
            return "not due"
        key, token = f"warden:canary:lock:{policy.agent}", uuid.uuid4().hex
        lease = lease_seconds(policy, self.call_timeout)
        if not await self.redis.set(key, token, nx=True, px=int(lease * 1000)):
            return "busy"
        try:
            if not await self._due(policy):  # another worker ran it while this one looked
                return "not due"
            await self.clean(policy.agent)
            run = await self._run(policy)
            await self._report(policy, run)
            return run.outcome.value
        finally:
            await self.redis.eval(_RELEASE, 1, key, token)  # type: ignore[misc]

    async def _due(self, policy: CanaryPolicy) -> bool:
        last = await canary_runs.recent(self.engine, policy.agent, 1)
        incident = await incident_steps.open_incident(self.engine, policy.agent)
        return canary.due(
            policy,
            self.clock(),
            last[0].started_at if last else None,
            incident_open=incident is not None,
            restarted_at=incident.restarted_at if incident is not None else None,
            last_failed=bool(last) and last[0].outcome in (Outcome.FAILED, Outcome.CAPACITY),
        )

    async def clean(self, agent: str) -> int:
        """Finish the runs of `agent` a dead worker left (interrupted) and delete every room of its
        canaries LiveKit still has; how many rooms were deleted."""
        for left in await canary_runs.unfinished(self.engine, agent):
            await self._delete(left.room)
            now = self.clock()
            if await canary_runs.finish(
                self.engine, left.n, Outcome.INTERRUPTED, now, detail="its worker stopped; room deleted"
            ):
                count_run(agent, Outcome.INTERRUPTED, None, now)
                log.warning("canary %s of %s was interrupted; its room is deleted", left.n, agent)
        try:
            names = await self.rooms.room_names()
        except UpstreamError as exc:
            log.warning("canary rooms of %s not listed: %s", agent, exc)
            return 0
        prefix = canary.agent_prefix(agent)
        left_behind = [n for n in names if n.startswith(prefix) and n[len(prefix) :].isdigit()]
        for name in left_behind:
            await self._delete(name)
        return len(left_behind)

    async def _run(self, policy: CanaryPolicy) -> Run:
        run = await canary_runs.start(self.engine, policy.agent, self.clock())
        try:
            await self.rooms.create_room(run.room, canary.empty_timeout(policy), canary.METADATA)
            sent = self.clock()
            dispatch_id = await self.rooms.dispatch(run.room, policy.agent, canary.METADATA)
        except UpstreamError as exc:
            # LiveKit did not take it: nothing is known of the agent (LiveKit's own trouble is counted
            # in warden_livekit_errors_total).
            await self._delete(run.room)
            return await self._finish(run, Outcome.INTERRUPTED, None, f"LiveKit refused the canary: {exc}")
        seconds = await self._wait(run.room, policy, sent)
        dispatch = None if seconds is not None else await self._dispatch(run.room, dispatch_id, sent)
        await self._delete(run.room)
        outcome = canary.classify(policy, seconds, dispatch)
        return await self._finish(run, outcome, seconds, canary.detail(policy, seconds, dispatch))

    async def _dispatch(self, room: str, dispatch_id: str, sent: float) -> DispatchInfo | None:
        """The run's dispatch as LiveKit lists it now (looked at again once the job listing lag after
        the dispatch, when listed with no job before it); None when not listed."""
        dispatch = await self._listed(room, dispatch_id)
        later = canary.look_again(sent, self.clock(), dispatch, self.listing_lag)
        if later > 0:
            await asyncio.sleep(later)
            dispatch = await self._listed(room, dispatch_id) or dispatch
        return dispatch

    async def _listed(self, room: str, dispatch_id: str) -> DispatchInfo | None:
        try:
            listed = await self.rooms.listed_dispatches(room)
        except UpstreamError as exc:  # no listing: the failure is judged without it (an outage's)
            log.warning("dispatches of canary room %s not listed: %s", room, exc)
            return None
        return next((d for d in listed if d.id == dispatch_id), None)

    async def _wait(self, room: str, policy: CanaryPolicy, sent: float) -> float | None:
        """Seconds from the dispatch to the agent in the room; None when it did not come in time."""
        until = sent + canary.wait_seconds(policy)
        key = arrivals_key(room)
        try:
            while (left := until - self.clock()) > 0:
                # Redis 6+ takes a fractional timeout; redis-py's hints say whole seconds
                # a look's delay is a fraction of the SLA; never under 10 ms: Redis reads a BLPOP timeout in
                # whole milliseconds, and 0 blocks for good
                wait = max(MIN_BLOCK_SECONDS, min(left, POLL_SECONDS, policy.sla / 4))
                popped = await self.redis.blpop([key], timeout=wait)  # type: ignore[arg-type,misc]
                if popped is not None and popped[1].decode() == policy.agent:
                    return self.clock() - sent
                if popped is None and await self._agent_in(room, policy.agent):
                    return self.clock() - sent
            return None
        finally:
            await self.redis.delete(key)

    async def _agent_in(self, room: str, agent: str) -> bool:
        try:
            return await self.rooms.agent_in(room, agent)
        except UpstreamError as exc:  # the webhook may still tell
            log.warning("canary room %s not listed: %s", room, exc)
            return False

    async def _finish(self, run: Run, outcome: Outcome, seconds: float | None, detail: str) -> Run:
        now = self.clock()
        await canary_runs.finish(self.engine, run.n, outcome, now, seconds=seconds, detail=detail)
        count_run(run.agent, outcome, seconds, now)
        if outcome in (Outcome.FAILED, Outcome.CAPACITY):
            log.warning("canary %s of %s failed: %s", run.n, run.agent, detail)
        return Run(run.n, run.agent, run.room, run.started_at, outcome, seconds, now, detail)

    async def _report(self, policy: CanaryPolicy, run: Run) -> None:
        """A pass to the agent's open incident; a run refused for want of capacity to its capacity
        incident, at once (as a room's refused job is); enough failures in a row (counted from the
        restart's grace on, if it had one: `canary.counts_after`; capacity runs skipped) to its
        incidents, as an outage."""
        if run.outcome is Outcome.PASSED:
            if await incident_steps.open_incident(self.engine, policy.agent) is not None:
                await self.reports.canary_passed(policy.agent)
            return
        if run.outcome is Outcome.CAPACITY:
            await self.reports.canary_full(policy.agent, f"canary: {run.detail}", run.room)
            return
        if run.outcome is not Outcome.FAILED:
            return
        incident = await incident_steps.open_incident(self.engine, policy.agent)
        since = canary.counts_after(policy, incident.restarted_at if incident is not None else None)
        runs = await canary_runs.recent(self.engine, policy.agent, policy.failures * 3 + 10)
        failed = canary.streak(r.outcome for r in runs if since is None or r.started_at >= since)
        if failed >= policy.failures:
            reason = f"canary: {failed} canaries in a row failed ({run.detail})"
            await self.reports.canary_failed(policy.agent, reason, run.room)

    async def _delete(self, room: str) -> None:
        try:
            await self.rooms.delete_room(room)
        except UpstreamError as exc:  # the next run deletes it (LiveKit closes it empty anyway)
            log.warning("canary room %s not deleted: %s", room, exc)

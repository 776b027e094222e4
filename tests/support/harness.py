"""Drive Warden's worker jobs in-process against a stand-in LiveKit on loopback, on a clock tests move.

Real: the database, Redis (the deadline timers are real ARQ jobs, inspected by id), the livekit-api
client over HTTP, the job functions. Pretend: the clock, and LiveKit itself (`FakeLiveKit`), which runs
on the same clock: its timers (a job listed late, an agent connecting, a crash timing out) run as the
test moves the clock, and the webhooks it sends of its own doing reach the worker's jobs when the test
lets time pass with `pass_time` (or `fire`s a deadline), each created at its own time.
"""

from __future__ import annotations

import contextlib
import heapq
import math
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from arq.connections import ArqRedis
from arq.constants import job_key_prefix
from arq.jobs import Job
from arq.worker import Retry
from sqlalchemy.ext.asyncio import AsyncEngine

from devtools.simulator.clock import ManualClock
from devtools.simulator.livekit import FakeLiveKit, room_sid
from devtools.simulator.serving import serve
from tests.support.events import parse
from tests.support.helpers import body
from tests.support.settings import KEY, SECRET, make_settings
from workers.adapters.livekit import LiveKitRooms
from workers.core.incident_values import Signal
from workers.core.room import AgentView, ReportBreach, ReportRecovered, Room
from workers.jobs.delivery.incident_reports import report_to_incident
from workers.jobs.rooms.effects import Effects
from workers.jobs.rooms.jobs import apply_webhook, on_deadline
from workers.jobs.runtime.context import context
from workers.jobs.runtime.lifecycle import shutdown, startup
from workers.jobs.runtime.worker import worker_settings
from workers.migrate import upgrade
from workers.queue.enqueue import Enqueuer
from workers.store.outbox import Pending
from workers.store.writer import load_room

AGENT = "notetaker"
ROOM, SID = "call-42", "RM_42"
T0 = float(int(time.time()))  # ARQ defers timers against the real clock


@dataclass
class RecordingIncidents:
    """Stands in for `workers.escalation.agents.Incidents` where a test looks only at the rooms."""

    failed: list[tuple[str, str]] = field(default_factory=list)
    breaches: list[tuple[str, str]] = field(default_factory=list)
    recovered: list[str] = field(default_factory=list)

    async def breach(
        self,
        room: Room,
        agent: str,
        reason: str,
        *,
        full: bool = False,
        unjoined: tuple[tuple[str, str], ...] = (),
    ) -> None:
        self.breaches.append((room.name, reason))

    async def room_failed(self, room: Room, agent: str, reason: str) -> None:
        self.failed.append((room.name, reason))

    async def room_recovered(self, room: Room, agent: str) -> None:
        self.recovered.append(room.name)

    async def fold(self, room: Room, agent: str, report: ReportBreach | ReportRecovered) -> bool:
        """Never from the room's job: each report is its own job, as the tests of rooms count them."""
        return False

    async def protected(self, room: Room, agent: str, what: str) -> None:
        """Nothing to note: this stand-in keeps no incidents."""

    async def settle(self) -> None:
        """Nothing to settle: this stand-in keeps no incidents."""

    async def by_hand(self, signal: Signal, incident_id: str, by: str) -> str:
        """No incident to act on: this stand-in keeps none."""
        return "no incident"

    async def deliver(self, pending: Pending) -> None:
        """Nothing to deliver: this stand-in decides no outgoing calls."""


@dataclass
class Harness:
    fake: FakeLiveKit
    ctx: dict[str, Any]
    clock: ManualClock
    incidents: RecordingIncidents
    queue: ArqRedis
    escalations_run: set[str] = field(default_factory=set)
    sids: dict[str, str] = field(default_factory=lambda: {ROOM: SID})  # room name -> the sid sent with it
    # how long each of the stand-in's next webhooks takes to arrive, in order (none left: at once); a
    # webhook that is late can arrive after a later one
    delays: list[float] = field(default_factory=list)
    _ids: int = 0
    _delivered: int = 0  # how many of the stand-in's own webhooks are delivered or on their way
    _arriving: list[tuple[float, int]] = field(default_factory=list)  # (when it arrives, its index), a heap

    async def send(
        self,
        event: str,
        *,
        at: float | None = None,
        room: str = ROOM,
        sid: str = SID,
        event_id: str | None = None,
        **fields: Any,
    ) -> str:
        """Deliver one webhook, as LiveKit would, created at `at` (default: now)."""
        self._ids += 1
        self.sids.setdefault(room, sid)
        created = int(self.clock.now if at is None else at)
        raw = body(event, id=event_id or f"EV_{self._ids}", created_at=created, room=room, sid=sid, **fields)
        outcome = await apply_webhook(self.ctx, _dict(parse(raw)), self.clock.now)
        await self.run_escalations()
        return outcome

    @property
    def engine(self) -> AsyncEngine:
        """The worker's database engine."""
        return context(self.ctx).engine

    async def whole(self, sid: str = SID) -> Room:
        """The room: who is there, and a part per expected agent."""
        found = await load_room(self.engine, sid)
        assert found is not None
        return found

    async def room(self, sid: str = SID) -> AgentView:
        """The room's expected agent most in need (what its row shows)."""
        return (await self.whole(sid)).summary()

    async def timers(self) -> list[str]:
        """Ids of the deadline jobs waiting in the queue."""
        queued = await self.queue.zrange(context(self.ctx).settings.warden_queue_name, 0, -1)
        return sorted(m.decode() for m in queued if m.startswith(b"deadline:"))

    async def fire(self, sid: str = SID, *, early_by: float = 0.0) -> str:
        """Move the clock to the room's deadline (less `early_by`) and run its timer job."""
        room = await self.room(sid)
        assert room.deadline is not None, "no deadline is set"
        await self.pass_time(max(0.0, room.deadline.at - early_by - self.clock.now))
        await self.queue.delete(f"arq:job:deadline:{sid}:{room.deadline.attempt}")
        return await self.run_deadline(sid, room.deadline.attempt)

    async def run_deadline(self, sid: str, attempt: int) -> str:
        """Run the timer job as ARQ would, retrying it (`Retry`) until it finishes, at most 5 times."""
        for job_try in range(1, 6):
            self.ctx["job_try"] = job_try
            try:
                outcome = await on_deadline(self.ctx, sid, attempt)
                await self.run_escalations()
                return outcome
            except Retry:
                if job_try == 5:
                    raise
        raise AssertionError("unreachable")

    async def run_escalations(self) -> list[str]:
        """Run the incident report jobs the last job queued (as a worker would, right after it), in order;
        their outcomes. A job id this harness ran already is dropped unrun: ARQ keeps a finished job's
        result for an hour (`keep_result`), and a worker's Redis refuses the same id meanwhile."""
        queue_name = context(self.ctx).settings.warden_queue_name
        outcomes = []
        for member in await self.queue.zrange(queue_name, 0, -1):
            job_id = member.decode()
            if not job_id.startswith("incident:"):
                continue
            info = await Job(job_id, self.queue, _queue_name=queue_name).info()
            assert info is not None, job_id
            await self.queue.zrem(queue_name, job_id)
            await self.queue.delete(job_key_prefix + job_id)
            if job_id not in self.escalations_run:
                self.escalations_run.add(job_id)
                outcomes.append(await report_to_incident(self.ctx, *info.args))
        return outcomes

    def advance(self, seconds: float) -> None:
        """Move the clock (the stand-in's timers run; what they announce waits for `deliver`)."""
        self.clock.now += seconds

    async def pass_time(self, seconds: float) -> None:
        """Let `seconds` pass: the stand-in's timers run in order, and after each the webhooks it sent
        are delivered to the worker's jobs, as LiveKit would send them then."""
        until = self.clock.now + seconds
        await self.deliver()
        while True:
            timer, arrives = self.clock.next_due(), self.next_arrival()
            if arrives <= until and (timer is None or arrives < timer):
                self.clock.now = max(self.clock.now, arrives)
            elif not self.clock.step(until):
                break
            await self.deliver()
        self.clock.now = until

    def next_arrival(self) -> float:
        """When the next webhook on its way arrives (inf: none is)."""
        return self._arriving[0][0] if self._arriving else math.inf

    async def run_for(self, seconds: float, sid: str = SID) -> list[str]:
        """Let `seconds` pass as a worker lives them: the stand-in's timers and webhooks in order, and the
        room's deadline run the moment it falls due (as often as it does). The deadlines' outcomes."""
        until, outcomes, ran = self.clock.now + seconds, [], None
        while True:
            deadline = (await self.room(sid)).deadline
            due = deadline.at if deadline is not None else math.inf
            if deadline is not None and due <= self.clock.now:
                assert deadline != ran, f"{deadline} ran and is still due"
                await self.queue.delete(f"arq:job:deadline:{sid}:{deadline.attempt}")
                outcomes.append(await self.run_deadline(sid, deadline.attempt))
                ran = deadline
                continue
            if self.clock.now >= until:
                return outcomes
            timer = self.clock.next_due()
            await self.pass_time(
                max(
                    0.0,
                    min(due, until, math.inf if timer is None else timer, self.next_arrival())
                    - self.clock.now,
                )
            )

    async def deliver(self) -> None:
        """Deliver the webhooks the stand-in sent of its own doing that have arrived by now (at once,
        unless `delays` says otherwise) and nobody delivered yet, each created at the time it was sent."""
        while True:
            while self._delivered < len(self.fake.webhooks):
                at = self.fake.webhooks[self._delivered][0]
                delay = self.delays.pop(0) if self.delays else 0.0
                heapq.heappush(self._arriving, (at + delay, self._delivered))
                self._delivered += 1
            if self.next_arrival() > self.clock.now:
                return
            _, index = heapq.heappop(self._arriving)
            at, event, room, fields = self.fake.webhooks[index]
            sid = self.sids.get(room, room_sid(room))
            await self.send(event, at=at, room=room, sid=sid, **fields)


def _dict(event: Any) -> dict[str, Any]:
    from workers.core.events import to_dict

    return to_dict(event)


@contextlib.asynccontextmanager
async def harness(
    redis_url: str,
    database_url: str,
    *,
    escalation: bool = False,
    livekit: dict[str, Any] | None = None,
    **settings: Any,
) -> AsyncIterator[Harness]:
    """With `escalation`, the worker's real escalation (incidents, Cloud restart, hooks, alerts) runs;
    without, a recorder stands in for it. `livekit`: the stand-in's options (its timing is the real
    server's unless shortened). `settings` may use "{livekit}" for the stand-in's URL."""
    clock = ManualClock(T0)  # the worker's jobs' clock, and the stand-in's
    fake = FakeLiveKit(KEY, SECRET, clock=clock, **(livekit or {}))
    async with serve(fake.app) as url:
        values = {k: v.replace("{livekit}", url) if isinstance(v, str) else v for k, v in settings.items()}
        config = make_settings(
            redis_url=redis_url,
            database_url=database_url,
            livekit_url=url,
            **{"warden_agent_name": AGENT, **values},  # warden_agent_name="": no agent configured
        )
        queue = ArqRedis.from_url(redis_url)
        incidents = RecordingIncidents()
        ctx: dict[str, Any] = {"redis": queue, "job_try": 1}
        livekit, effects = None, None
        if not escalation:
            livekit = LiveKitRooms(url, KEY, SECRET, timeout=2.0)
            effects = Effects(
                presence=livekit,
                dispatcher=livekit,
                enqueuer=Enqueuer(queue, config.warden_queue_name),
                incidents=incidents,
                clock=clock,
            )
        # as the worker's own start-up: it says which jobs it runs (the web refuses what none runs)
        runs = [f.name for f in worker_settings(config)["functions"]]
        await startup(ctx, settings=config, clock=clock, effects=effects, runs=runs)
        await upgrade(context(ctx).engine)
        try:
            yield Harness(fake, ctx, clock, incidents, queue)
        finally:
            await shutdown(ctx)
            if livekit is not None:
                await livekit.aclose()
            await queue.aclose()

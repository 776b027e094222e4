"""Drive Warden's worker jobs in-process against a stand-in LiveKit on loopback, on a clock tests move.

Real: the database, Redis (the deadline timers are real ARQ jobs, inspected by id), the livekit-api
client over HTTP, the job functions. Pretend: the clock, and LiveKit itself (`FakeLiveKit`).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from arq.connections import ArqRedis
from arq.constants import job_key_prefix
from arq.jobs import Job
from arq.worker import Retry
from sqlalchemy.ext.asyncio import AsyncEngine

from devtools.simulator.livekit import FakeLiveKit
from devtools.simulator.serving import serve
from tests.support.events import parse
from tests.support.helpers import body
from tests.support.settings import KEY, SECRET, make_settings
from workers.adapters.livekit import LiveKitRooms
from workers.core.room import AgentView, Room
from workers.jobs.delivery.escalate import escalate
from workers.jobs.rooms.effects import Effects
from workers.jobs.rooms.jobs import apply_webhook, on_deadline
from workers.jobs.runtime.context import context
from workers.jobs.runtime.lifecycle import shutdown, startup
from workers.migrate import upgrade
from workers.queue.enqueue import Enqueuer
from workers.store.outbox import Pending
from workers.store.writer import load_room

AGENT = "notetaker"
ROOM, SID = "call-42", "RM_42"
T0 = float(int(time.time()))  # ARQ defers timers against the real clock


@dataclass
class Clock:
    now: float = T0

    def __call__(self) -> float:
        return self.now


@dataclass
class RecordingEscalator:
    """Stands in for `workers.escalation.escalation.Escalation` where a test looks only at the rooms."""

    escalated: list[tuple[str, str]] = field(default_factory=list)
    breaches: list[tuple[str, str]] = field(default_factory=list)
    recovered: list[str] = field(default_factory=list)

    async def breach(self, room: Room, agent: str, reason: str) -> None:
        self.breaches.append((room.name, reason))

    async def room_failed(self, room: Room, agent: str, reason: str) -> None:
        self.escalated.append((room.name, reason))

    async def room_recovered(self, room: Room, agent: str) -> None:
        self.recovered.append(room.name)

    async def settle(self) -> None:
        """Nothing to settle: this stand-in keeps no incidents."""

    async def deliver(self, pending: Pending) -> None:
        """Nothing to deliver: this stand-in decides no outgoing calls."""


@dataclass
class Harness:
    fake: FakeLiveKit
    ctx: dict[str, Any]
    clock: Clock
    escalator: RecordingEscalator
    queue: ArqRedis
    escalations_run: set[str] = field(default_factory=set)
    _ids: int = 0

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
        self.clock.now = max(self.clock.now, room.deadline.at - early_by)
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
        """Run the escalation jobs the last job queued (as a worker would, right after it), in order;
        their outcomes. A job id this harness ran already is dropped unrun: ARQ keeps a finished job's
        result for an hour (`keep_result`), and a worker's Redis refuses the same id meanwhile."""
        queue_name = context(self.ctx).settings.warden_queue_name
        outcomes = []
        for member in await self.queue.zrange(queue_name, 0, -1):
            job_id = member.decode()
            if not job_id.startswith("escalate:"):
                continue
            info = await Job(job_id, self.queue, _queue_name=queue_name).info()
            assert info is not None, job_id
            await self.queue.zrem(queue_name, job_id)
            await self.queue.delete(job_key_prefix + job_id)
            if job_id not in self.escalations_run:
                self.escalations_run.add(job_id)
                outcomes.append(await escalate(self.ctx, *info.args))
        return outcomes

    def advance(self, seconds: float) -> None:
        self.clock.now += seconds


def _dict(event: Any) -> dict[str, Any]:
    from workers.core.events import to_dict

    return to_dict(event)


@contextlib.asynccontextmanager
async def harness(
    redis_url: str, database_url: str, *, escalation: bool = False, **settings: Any
) -> AsyncIterator[Harness]:
    """With `escalation`, the worker's real escalation (incidents, Cloud restart, hooks, alerts) runs;
    without, a recorder stands in for it. `settings` may use "{livekit}" for the stand-in's URL."""
    fake = FakeLiveKit(KEY, SECRET)
    async with serve(fake.app) as url:
        values = {k: v.replace("{livekit}", url) if isinstance(v, str) else v for k, v in settings.items()}
        config = make_settings(
            redis_url=redis_url,
            database_url=database_url,
            livekit_url=url,
            **{"warden_agent_name": AGENT, **values},  # warden_agent_name="": no agent configured
        )
        queue = ArqRedis.from_url(redis_url)
        clock, escalator = Clock(), RecordingEscalator()
        ctx: dict[str, Any] = {"redis": queue, "job_try": 1}
        livekit, effects = None, None
        if not escalation:
            livekit = LiveKitRooms(url, KEY, SECRET, timeout=2.0)
            effects = Effects(
                presence=livekit,
                dispatcher=livekit,
                enqueuer=Enqueuer(queue, config.warden_queue_name),
                escalator=escalator,
                clock=clock,
            )
        await startup(ctx, settings=config, clock=clock, effects=effects)
        await upgrade(context(ctx).engine)
        try:
            yield Harness(fake, ctx, clock, escalator, queue)
        finally:
            await shutdown(ctx)
            if livekit is not None:
                await livekit.aclose()
            await queue.aclose()

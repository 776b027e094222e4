"""The jobs tier's world: Warden's worker in-process, its jobs run as its ARQ worker registers them, against
in-memory LiveKit, LiveKit Cloud, deploy hook and alert channel (`tests.support.fakes`), an in-memory
queue (`tests.support.memory_queue`) and an in-memory Redis (fakeredis: escalation's outage window), on
SQLite, on a clock the test moves. No server, no process, no socket: minutes of a scenario run in a
fraction of a second.

The worker is started by its own start-up (`workers.jobs.runtime.lifecycle.startup`, handed the
in-memory adapters), so the jobs, the escalation and the delivery are wired as in production. People
and agents act through the world, which changes what LiveKit has and sends LiveKit's webhook the way
the web does (queued under the event's id). Agents answer Warden's dispatches a moment later unless
their deployment is down (`agent_down`), until it is restarted. Time passes only in `wait`: every job,
cron (the sweep and reconciliation, at the worker's schedule) and arrival due meanwhile runs at its own
time, in order.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import heapq
import itertools
import shutil
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Collection
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import fakeredis
import httpx
from arq.cron import CronJob, next_cron
from arq.worker import Function, Retry
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.support.events import parse
from tests.support.fakes import (
    InMemoryAlerts,
    InMemoryCloud,
    InMemoryHook,
    InMemoryIncidentWebhook,
    InMemoryLiveKit,
)
from tests.support.helpers import agent, body, caller, person
from tests.support.memory_queue import MemoryQueue, QueuedJob
from tests.support.settings import make_settings
from workers.core.events import DispatchInfo, JobInfo, JobReason, JobStatus, to_dict
from workers.jobs.runtime.context import context
from workers.jobs.runtime.lifecycle import Adapters, shutdown, startup
from workers.jobs.runtime.worker import worker_settings
from workers.migrate import upgrade
from workers.queue.jobs import queue_heartbeat, queue_webhook
from workers.settings import Settings, normalise_database_url
from workers.store.engine import make_engine
from workers.store.incidents import Incident, list_incidents
from workers.store.queries import find_room

AGENT = "notetaker"
DEPLOYMENT = "CA_notetaker"
T0 = 1_700_000_000.0  # a fixed start: nothing here reads the real clock
JOIN_AFTER = 1.0  # seconds from a dispatch to its agent's arrival
MAX_STEPS = 500  # at one moment of the clock: far more than any scenario here needs; a loop stops soon
# The worker's crons that run by default; not retention ("prune"), which deletes nothing in the minutes a
# scenario lasts (WARDEN_RETENTION is days) and would cost a query every 15 s of the test's time.
CRONS = ("sweep", "reconcile", "discover")


@dataclass
class Clock:
    now: float = T0

    def __call__(self) -> float:
        return self.now


def _no_http(request: httpx.Request) -> httpx.Response:
    raise RuntimeError(f"the jobs tier makes no HTTP call ({request.method} {request.url.host})")


@dataclass
class World:
    ctx: dict[str, Any]
    clock: Clock
    livekit: InMemoryLiveKit
    cloud: InMemoryCloud
    hook: InMemoryHook
    alerts: InMemoryAlerts  # the Slack-compatible alert channel
    webhook: InMemoryIncidentWebhook  # the incident webhook, told of every step
    queue: MemoryQueue
    down: set[str] = field(default_factory=set)  # agents whose deployment answers no dispatch
    agents_publish: bool = True  # agents answering a dispatch publish a track as they join
    full: set[str] = field(default_factory=set)  # agents whose workers refuse jobs (JSR_NO_CAPACITY)
    # agent -> a worker that takes its jobs and whose agent never joins
    swallowing: dict[str, str] = field(default_factory=dict)
    outcomes: list[tuple[str, Any]] = field(default_factory=list)  # (job id, what it returned)
    _later: list[tuple[float, int, Callable[[], Awaitable[None]]]] = field(default_factory=list)
    _functions: dict[str, Function] = field(default_factory=dict)
    _cron_jobs: dict[str, CronJob] = field(default_factory=dict)
    _crons: dict[str, float] = field(default_factory=dict)  # cron name -> when it runs next
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _adapters: Adapters | None = None  # what the worker is started with, again at `restart_worker`
    _settings: dict[str, Any] = field(default_factory=dict)
    _cron_names: Collection[str] = CRONS

    @property
    def engine(self) -> AsyncEngine:
        return context(self.ctx).engine

    # --- people and agents ------------------------------------------------------------------------

    async def send(
        self,
        event: str,
        room: str,
        *,
        event_id: str = "",
        created_at: float | None = None,
        **fields: Any,
    ) -> bool:
        """LiveKit's webhook `event` about `room`, queued as the web queues it (False: its id was
        known), then everything due run."""
        sid = self.livekit.rooms[room].sid if room in self.livekit.rooms else f"RM_{room}"
        created = int(self.clock.now if created_at is None else created_at)
        raw = body(
            event, id=event_id or f"EV_{next(self._ids)}", created_at=created, room=room, sid=sid, **fields
        )
        parsed = parse(raw)
        queued = await queue_webhook(self.queue, parsed.id, to_dict(parsed), self.clock.now)
        await self.run()
        return queued

    async def person_joins(self, room: str, identity: str = "alice") -> None:
        self.livekit.join(room, identity)
        await self.send("participant_joined", room, participant=person(identity))

    async def caller_joins(self, room: str, identity: str, number: str) -> None:
        """A phone caller (kind SIP) joins."""
        self.livekit.join(room, identity, sip=True)
        await self.send("participant_joined", room, participant=caller(identity, number))

    async def person_leaves(self, room: str, identity: str = "alice") -> None:
        self.livekit.leave(room, identity)
        await self.send("participant_left", room, participant=person(identity))

    async def agent_joins(self, room: str, identity: str, agent_name: str = AGENT) -> None:
        self.livekit.join(room, identity, agent_name=agent_name)
        await self.send("participant_joined", room, participant=agent(identity, agent_name))

    async def agent_leaves(self, room: str, identity: str, agent_name: str = AGENT) -> None:
        self.livekit.leave(room, identity)
        await self.send("participant_left", room, participant=agent(identity, agent_name))

    async def agent_publishes(self, room: str, identity: str, agent_name: str = AGENT) -> None:
        await self.send(
            "track_published", room, participant=agent(identity, agent_name), track={"sid": f"TR_{identity}"}
        )

    async def heartbeat(self, room: str, identity: str) -> None:
        """The agent says it is working (`POST /api/rooms/{name}/heartbeat`, as the web queues it)."""
        await queue_heartbeat(self.queue, room, identity, self.clock.now)
        await self.run()

    async def room_ends(self, room: str) -> None:
        self.livekit.close(room)
        await self.send("room_finished", room)

    def agent_down(self, agent_name: str = AGENT) -> None:
        """The agent's deployment answers no dispatch until it is restarted."""
        self.down.add(agent_name)

    def app_dispatch(self, room: str, agent_name: str = AGENT) -> None:
        """The application dispatches the agent (the world answers it as it answers Warden's)."""
        self._dispatched(room, self.livekit.app_dispatch(room, agent_name))

    def jobs_say(self, room: str, job: JobInfo) -> None:
        """Every dispatch of the room now lists `job` (LiveKit's `ListDispatch`)."""
        dispatches = self.livekit.rooms[room].dispatches
        for key, dispatch in dispatches.items():
            agents = (job.identity,) if job.identity else ()
            dispatches[key] = replace(dispatch, statuses=(job.status,), jobs=(job,), agents=agents)

    def _dispatched(self, room: str, dispatch: DispatchInfo) -> None:
        if dispatch.agent_name in self.full:
            self.jobs_say(room, JobInfo(JobStatus.PENDING, JobReason.NO_CAPACITY))
            return
        if dispatch.agent_name in self.swallowing:
            worker = self.swallowing[dispatch.agent_name]
            self.jobs_say(room, JobInfo(JobStatus.RUNNING, worker_id=worker, identity=f"agent-{dispatch.id}"))
            return
        if dispatch.agent_name in self.down:
            return
        identity = f"{dispatch.agent_name}-{next(self._ids)}"

        async def arrives() -> None:
            if room not in self.livekit.rooms or dispatch.id not in self.livekit.rooms[room].dispatches:
                return  # the room ended, or the dispatch was withdrawn, before the agent came
            await self.agent_joins(room, identity, dispatch.agent_name)
            if self.agents_publish:
                await self.agent_publishes(room, identity, dispatch.agent_name)

        self.later(JOIN_AFTER, arrives)

    def _restarted(self, agent_name: str) -> None:
        self.down.discard(agent_name)

    def later(self, seconds: float, happening: Callable[[], Awaitable[None]]) -> None:
        """`happening` takes place `seconds` from now (in `wait`)."""
        heapq.heappush(self._later, (self.clock.now + seconds, next(self._ids), happening))

    # --- time -------------------------------------------------------------------------------------

    async def run(self) -> None:
        """Everything due by now, until nothing is: arrivals, then jobs in ARQ's order, then crons."""
        for _ in range(MAX_STEPS):
            now = self.clock.now
            if self._later and self._later[0][0] <= now:
                await heapq.heappop(self._later)[2]()
            elif (job := self.queue.take()) is not None:
                await self._run_job(job)
            elif (cron := next((n for n, at in self._crons.items() if at <= now), None)) is not None:
                await self._run_cron(cron)
            else:
                return
        raise AssertionError(f"still busy after {MAX_STEPS} steps: jobs that queue each other forever?")

    async def wait(self, seconds: float) -> None:
        """Let `seconds` pass, the clock stopping at every moment something is due."""
        until = self.clock.now + seconds
        await self.run()
        while (step := self._next_due()) is not None and step <= until:
            self.clock.now = max(self.clock.now, step)
            await self.run()
        self.clock.now = until
        await self.run()

    def _next_due(self) -> float | None:
        times = [t for t in (self.queue.next_due(), *self._crons.values()) if t is not None]
        if self._later:
            times.append(self._later[0][0])
        return min(times, default=None)

    async def _run_job(self, job: QueuedJob) -> None:
        """Run one job as ARQ's worker would: its registered function (dead letters and metrics
        included), with ARQ's keys in a copy of the worker's ctx, its `Retry` honoured."""
        function = self._functions[job.function]
        if function.max_tries is not None and job.job_try > function.max_tries:
            self.queue.finish(job, function.keep_result_s)
            self.outcomes.append((job.job_id, "failed: max tries"))
            return
        ctx = {**self.ctx, "job_id": job.job_id, "job_try": job.job_try, "score": int(job.due * 1000)}
        try:
            outcome = await function.coroutine(ctx, *job.args)
        except Retry as exc:
            self.queue.retry(job, (exc.defer_score or 0) / 1000)
            self.outcomes.append((job.job_id, "retry"))
            return
        self.queue.finish(job, function.keep_result_s)
        self.outcomes.append((job.job_id, outcome))
        await context(self.ctx).delivered.flush()  # the worker's does so a moment later

    async def _run_cron(self, name: str) -> None:
        cron = self._cron_jobs[name]
        self._crons[name] = self._after(cron, self.clock.now)
        self.outcomes.append((name, await cron.coroutine({**self.ctx, "job_id": name})))
        await context(self.ctx).delivered.flush()

    @staticmethod
    def _after(cron: CronJob, now: float) -> float:
        previous = dt.datetime.fromtimestamp(now, dt.UTC)
        fields = ("month", "day", "weekday", "hour", "minute", "second")
        return next_cron(previous, **{f: getattr(cron, f) for f in fields}, microsecond=0).timestamp()

    def _schedule(self, settings: Settings, crons: Collection[str]) -> None:
        registered = worker_settings(settings)
        self._functions = {f.name: f for f in registered["functions"]}
        self._cron_jobs = {
            c.name: c for c in registered["cron_jobs"] if c.name.removeprefix("cron:") in crons
        }
        for name, cron in self._cron_jobs.items():
            self._crons[name] = self.clock.now if cron.run_at_startup else self._after(cron, self.clock.now)

    async def restart_worker(self, **settings: Any) -> None:
        """The worker stopped and started again with `settings` changed (a deploy that changes a
        variable), over the same database, queue, Redis and LiveKit; its start-up's crons run."""
        await shutdown(self.ctx)
        self._settings = {**self._settings, **settings}
        config = make_settings(**self._settings)
        adapters = self._adapters
        assert adapters is not None
        await startup(self.ctx, settings=config, clock=self.clock, adapters=lambda _s, _r: adapters)
        self._schedule(config, self._cron_names)
        await self.run()

    # --- what Warden knows ------------------------------------------------------------------------

    async def phase(self, room: str) -> str:
        """The room's phase as the operator API lists it ("" when Warden never heard of it)."""
        async with self.engine.connect() as connection:
            query = text("SELECT phase FROM rooms WHERE name = :name ORDER BY first_seen_at DESC LIMIT 1")
            return str(await connection.scalar(query, {"name": room}) or "")

    async def timeline(self, room: str) -> list[str]:
        """The names of the lines of the room's log, as the API shows them, oldest first."""
        found = await find_room(self.engine, room)
        assert found is not None, f"Warden never heard of room {room}"
        return [entry.name for entry in found.timeline]

    def timers(self) -> list[tuple[str, float]]:
        """The deadline jobs waiting in the queue: (job id, seconds from now until it is due)."""
        return [(i, self.queue.queued[i].due - self.clock.now) for i in self.queue.ids("deadline:")]

    async def incidents(self) -> list[Incident]:
        """Every incident, newest first, as the operator API lists them."""
        return (await list_incidents(self.engine, limit=100, offset=0))[0]


_TEMPLATE: list[tempfile.TemporaryDirectory[str]] = []  # one migrated database per test process


async def _migrated(path: Path) -> None:
    """A migrated, empty database at `path`: a copy of one migrated once per test process (running the
    migrations takes longer than most scenarios)."""
    if not _TEMPLATE:
        _TEMPLATE.append(tempfile.TemporaryDirectory(prefix="warden-jobs-"))
        engine = make_engine(normalise_database_url(f"sqlite:///{_TEMPLATE[0].name}/warden.db"))
        try:
            await upgrade(engine)
        finally:
            await engine.dispose()
    shutil.copyfile(Path(_TEMPLATE[0].name) / "warden.db", path)


@contextlib.asynccontextmanager
async def jobs_world(
    directory: Path,
    *,
    cloud: bool = True,
    hook: bool = False,
    crons: Collection[str] = CRONS,
    **settings: Any,
) -> AsyncIterator[World]:
    """A started worker in its world, its database a SQLite file in `directory`. `cloud`: the agent's
    LiveKit Cloud deployment is there to restart (`DEPLOYMENT`); `hook`: a deploy hook is configured;
    `crons`: which of the worker's crons run, on their schedule. `settings` override Warden's (the agent
    expected is `AGENT`; escalation retries without waiting)."""
    clock = Clock()
    values = {
        "database_url": f"sqlite:///{directory / 'warden.db'}",
        **{"warden_agent_name": AGENT, "warden_escalation_backoff_seconds": 0, **settings},
    }
    config = make_settings(**values)
    redis = fakeredis.FakeAsyncRedis(server=fakeredis.FakeServer())
    http = httpx.AsyncClient(transport=httpx.MockTransport(_no_http))
    world = World(
        ctx={"redis": redis, "job_try": 1},
        clock=clock,
        livekit=InMemoryLiveKit(clock),
        cloud=InMemoryCloud({DEPLOYMENT: AGENT}),
        hook=InMemoryHook(),
        alerts=InMemoryAlerts(),
        webhook=InMemoryIncidentWebhook(),
        queue=MemoryQueue(clock),
    )
    world.livekit.on_dispatch = world._dispatched
    world.cloud.on_restart = world.hook.on_restart = world._restarted
    adapters = Adapters(
        presence=world.livekit,
        protector=world.livekit,
        dispatcher=world.livekit,
        cloud=world.cloud if cloud else None,
        hook=world.hook if hook else None,
        alerter=world.alerts,
        alert_routes={"webhook": world.webhook},
        http=http,
        queue=world.queue,
        redis=redis,
    )
    world._adapters, world._settings, world._cron_names = adapters, values, crons
    await _migrated(directory / "warden.db")
    await startup(world.ctx, settings=config, clock=clock, adapters=lambda _settings, _redis: adapters)
    try:
        world._schedule(config, crons)
        await world.run()
        yield world
    finally:
        await shutdown(world.ctx)
        await http.aclose()
        await redis.aclose()

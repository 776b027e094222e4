"""The ARQ worker: jobs that fold events into rooms and carry out what the rooms need. `python -m workers`.

- `apply_webhook(event)`: record one reduced webhook; schedule the deadline it sets, if any.
- `on_deadline(room_sid, attempt)`: the timer. Records DEADLINE_PASSED, then works through the room's
  pending questions (check presence → evict → re-dispatch), recording each answer before the next
  step, so a job that dies half-way is finished by its retry or by the sweep, never done twice.
  Single-flight: its id is `deadline:{sid}:{attempt}` and no result is kept, so it can be queued
  again (by the sweep) only once it is no longer queued or running.
- `heartbeat(room_name, identity)`: an agent says it is working.
- `sweep` (cron): re-queues every overdue deadline, so a lost timer or a dead worker still fires.

Every job may run twice; recording is idempotent by event id, per-room writes are serialised by the
database (row lock and version) and, inside one process, by a striped lock.
"""

from __future__ import annotations

import asyncio
import logging
import time
import zlib
from collections.abc import Callable
from typing import Any

import httpx
from arq import cron
from arq.worker import Retry, func
from redis.exceptions import RedisError
from sqlalchemy.exc import DBAPIError, OperationalError, SQLAlchemyError

from workers.adapters.cloud import CloudAgents
from workers.adapters.hooks import DeployHook, SlackAlerter
from workers.adapters.livekit import LiveKitRooms
from workers.core.errors import UpstreamError
from workers.core.events import Event, EventKind, Fact, Participant, from_dict, internal
from workers.core.machine import pending_actions, transition
from workers.core.presence import RECONCILE_GRACE_SECONDS
from workers.core.room import (
    Action,
    CheckPresence,
    Dispatch,
    Escalate,
    Evict,
    Recovery,
    Redispatch,
    ReportBreach,
    ReportRecovered,
    Room,
    ScheduleDeadline,
)
from workers.jobs.effects import DEADLINE_JOB, Effects, deadline_job_id
from workers.jobs.escalation import Escalation, Restarter
from workers.jobs.metrics import observe_recorded, timed_job
from workers.settings import Settings
from workers.store.engine import make_engine
from workers.store.group import GroupCommit
from workers.store.queries import known_sids, open_rooms, overdue_deadlines
from workers.store.writer import Outcome, Recorded, load_room

log = logging.getLogger("warden.worker")

LOCK_STRIPES = 256
JOB_TIMEOUT_SECONDS = 30
MAX_TRIES = 25
SWEEP_GRACE_SECONDS = 2.0
MAX_STEPS = 6


def _retry_delay(job_try: int) -> float:
    """Back off 1, 2, 4 ... seconds, capped at 30, while the database or LiveKit is unavailable."""
    return float(min(30, 2 ** max(0, job_try - 1)))


async def _record(ctx: dict[str, Any], batch: list[tuple[Event, float]]) -> Recorded:
    """Record events of one room (see `store.record_events`; concurrent jobs' batches are committed
    together, see `workers.store.group`), then carry out the notices decided."""
    first = batch[0][0]
    lock = ctx["locks"][zlib.crc32((first.room_sid or first.room_name).encode()) % LOCK_STRIPES]
    try:
        async with lock:
            committer: GroupCommit = ctx["committer"]
            recorded = await committer.record(batch)
    except (OperationalError, DBAPIError, OSError) as exc:
        delay = _retry_delay(ctx["job_try"])
        log.warning("database unavailable (%s); %s retried in %.0fs", type(exc).__name__, first.id, delay)
        raise Retry(defer=delay) from exc
    for event, _ in batch:
        log.info("%s %s room=%s: %s", event.name, event.id, event.room_name or "-", recorded.outcome)
    if recorded.outcome is not Outcome.DUPLICATE:
        observe_recorded([e for e, _ in batch], recorded.before, recorded.room, recorded.actions)
    await _notices(ctx, recorded)
    return recorded


async def _ask(ctx: dict[str, Any], question: Action, room: Room) -> Event | None:
    """Carry out a question to LiveKit; a retryable failure makes ARQ run the job again later."""
    try:
        answer: Event | None = await ctx["effects"].execute(question, room)
    except UpstreamError as exc:
        delay = _retry_delay(ctx["job_try"])
        log.warning("LiveKit unavailable for room %s (%s); retried in %.0fs", room.name, exc, delay)
        raise Retry(defer=delay) from exc
    return answer


async def _notices(ctx: dict[str, Any], recorded: Recorded) -> None:
    """Carry out the decided actions that need no answer. A failure here is logged, not fatal: the
    deadline is in the database for the sweep, and a missed first dispatch is caught by the SLA."""
    if recorded.room is None:
        return
    effects: Effects = ctx["effects"]
    for action in recorded.actions:
        if isinstance(action, ScheduleDeadline | Dispatch | Escalate | ReportBreach | ReportRecovered):
            try:
                await effects.execute(action, recorded.room)
            except (UpstreamError, RedisError, SQLAlchemyError, OSError) as exc:
                what = str(exc) if isinstance(exc, UpstreamError) else type(exc).__name__
                log.warning("%s for room %s failed: %s", type(action).__name__, recorded.room.name, what)


async def apply_webhook(ctx: dict[str, Any], event: dict[str, Any], received_at: float) -> str:
    """Job: record one reduced webhook (see `workers.core.events`) and fold it into its room."""
    return str((await _record(ctx, [(from_dict(event), received_at)])).outcome)


async def on_deadline(ctx: dict[str, Any], room_sid: str, attempt: int) -> str:
    """Job: a room's deadline `attempt` is due. Ask LiveKit, then act on the answer, step by step."""
    effects: Effects = ctx["effects"]
    room = await load_room(ctx["engine"], room_sid)
    if room is None or room.deadline is None or room.deadline.attempt != attempt:
        return "stale"
    now = effects.clock()
    if room.recovery is Recovery.NONE and now < room.deadline.at:
        raise Retry(defer=room.deadline.at - now)  # early (clock skew, or a sweep that ran ahead)
    fired = internal(
        EventKind.DEADLINE_PASSED,
        f"deadline_passed:{room_sid}:{attempt}",
        room_sid,
        room.name,
        Fact(attempt, now),
    )
    current: Room | None = room
    if room.recovery is Recovery.NONE:
        # Decide in memory, ask LiveKit, then commit the deadline and LiveKit's answer together: one
        # write instead of two. A job that dies before the commit leaves the deadline due, to be re-run.
        decided = transition(room, fired, now=now, policy=ctx["policy"])
        batch = [(fired, now)]
        for question in decided.actions:
            if isinstance(question, CheckPresence):
                answer = await _ask(ctx, question, decided.room)
                if answer is not None:
                    batch.append((answer, effects.clock()))
        current = (await _record(ctx, batch)).room
    for _ in range(MAX_STEPS):
        if current is None:
            break
        questions = [
            a
            for a in pending_actions(current, ctx["policy"])
            if isinstance(a, CheckPresence | Evict | Redispatch) and a.attempt == attempt
        ]
        if not questions:
            break
        answer = await _ask(ctx, questions[0], current)
        if answer is None:
            break
        current = (await _record(ctx, [(answer, effects.clock())])).room
    return str(current.recovery) if current is not None else "no room"


async def heartbeat(ctx: dict[str, Any], room_name: str, identity: str, at: float) -> str:
    """Job: an agent in `room_name` says it is working (counts as activity for the stall check)."""
    event = internal(
        EventKind.HEARTBEAT,
        f"heartbeat:{room_name}:{identity}:{at:.3f}",
        "",
        room_name,
        Fact(at=at),
        participant=Participant(identity),
    )
    return str((await _record(ctx, [(event, at)])).outcome)


async def sweep(ctx: dict[str, Any]) -> int:
    """Cron: queue the deadline job of every room whose deadline is overdue (return how many), and
    resolve an incident none of whose rooms waits any more."""
    effects: Effects = ctx["effects"]
    due = await overdue_deadlines(ctx["engine"], effects.clock() - SWEEP_GRACE_SECONDS)
    for room_sid, attempt in due:
        await effects.queue.enqueue_job(
            DEADLINE_JOB,
            room_sid,
            attempt,
            _job_id=deadline_job_id(room_sid, attempt),
            _queue_name=effects.queue_name,
        )
    try:
        await effects.escalator.settle()
    except (SQLAlchemyError, RedisError, OSError) as exc:
        log.warning("settling incidents failed: %s", type(exc).__name__)
    return len(due)


async def reconcile(ctx: dict[str, Any]) -> dict[str, int]:
    """Cron: compare Warden's open rooms with LiveKit's. Rooms LiveKit no longer has are closed; rooms
    Warden never heard of are adopted; who is in the room is corrected. At most
    `WARDEN_RECONCILE_BATCH` rooms are asked about per run (unknown rooms first, then those Warden has
    heard least recently from), so the cost stays bounded with many rooms."""
    settings: Settings = ctx["settings"]
    effects: Effects = ctx["effects"]
    listed_at = effects.clock()
    try:
        livekit_rooms = dict(await effects.presence.list_rooms())
    except UpstreamError as exc:
        log.warning("reconciliation skipped, LiveKit unavailable: %s", exc)
        return {}
    known = await open_rooms(ctx["engine"])
    now = effects.clock()
    # A room Warden heard of after (or just before) the listing may simply be missing from it.
    gone = [
        (sid, name)
        for sid, (name, updated) in known.items()
        if sid not in livekit_rooms and updated < listed_at - RECONCILE_GRACE_SECONDS
    ]
    seen = await known_sids(ctx["engine"], [sid for sid in livekit_rooms if sid not in known])
    unknown = [
        (sid, name)
        for sid, name in livekit_rooms.items()
        if sid not in known and sid not in seen and settings.watches(name)
    ]
    by_age = sorted((updated, sid, name) for sid, (name, updated) in known.items() if sid in livekit_rooms)
    to_ask = (unknown + [(sid, name) for _, sid, name in by_age])[: settings.warden_reconcile_batch]
    for sid, name in gone:
        await _record(ctx, [(_reconciled(sid, name, Fact(at=now, room_exists=False)), now)])
    for sid, name in to_ask:
        try:
            present = await effects.presence.participants(name)
        except UpstreamError as exc:
            log.warning("reconciliation of room %s skipped: %s", name, exc)
            continue
        fact = Fact(at=effects.clock(), room_exists=present is not None, participants=present or ())
        await _record(ctx, [(_reconciled(sid, name, fact), fact.at)])
    return {"closed": len(gone), "adopted": len(unknown[: len(to_ask)]), "asked": len(to_ask)}


def _reconciled(sid: str, name: str, fact: Fact) -> Event:
    return internal(EventKind.RECONCILED, f"reconciled:{sid}:{fact.at:.3f}", sid, name, fact)


async def fresh_start(ctx: dict[str, Any], room_sid: str, room_name: str, incident_id: str) -> None:
    """After a restart: give a waiting room a fresh start (see `EventKind.AGENT_RESTARTED`)."""
    at = ctx["effects"].clock()
    event = internal(
        EventKind.AGENT_RESTARTED,
        f"agent_restarted:{incident_id}:{room_sid}",
        room_sid,
        room_name,
        Fact(at=at),
    )
    await _record(ctx, [(event, at)])


def build_effects(ctx: dict[str, Any], *, clock: Callable[[], float] = time.time) -> Effects:
    """The adapters, from settings: LiveKit rooms and dispatch, Cloud agents, deploy hook, alerts.
    What needs closing is listed in `ctx["closers"]`."""
    settings: Settings = ctx["settings"]
    key, secret = settings.primary_key()
    livekit = LiveKitRooms(settings.livekit_url, key, secret, timeout=settings.warden_livekit_timeout_seconds)
    http = httpx.AsyncClient(timeout=3.0)  # escalation must fit in one job (JOB_TIMEOUT_SECONDS)
    ctx.setdefault("closers", []).extend([livekit.aclose, http.aclose])
    restarters: list[Restarter] = []
    cloud = None
    if settings.cloud_agents_url:
        cloud = CloudAgents(settings.cloud_agents_url, key, secret, agent_id=settings.warden_cloud_agent_id)
        ctx["closers"].append(cloud.aclose)
        restarters.append(cloud)
    hook_url = settings.warden_deploy_hook_url.get_secret_value()
    if hook_url:
        restarters.append(DeployHook(http, hook_url, settings.warden_deploy_hook_secret.get_secret_value()))
    alert_url = settings.warden_alert_webhook_url.get_secret_value()
    escalation = Escalation(
        engine=ctx["engine"],
        redis=ctx["redis"],
        policy=settings.escalation_policy(),
        restarters=restarters,
        cloud=cloud,
        alerter=SlackAlerter(http, alert_url) if alert_url else None,
        clock=clock,
        fresh_start=lambda sid, name, incident: fresh_start(ctx, sid, name, incident),
    )
    return Effects(
        presence=livekit,
        dispatcher=livekit,
        queue=ctx["redis"],
        queue_name=settings.warden_queue_name,
        escalator=escalation,
        clock=clock,
    )


async def startup(ctx: dict[str, Any]) -> None:
    """Open the database, the queue client and the adapters; tests may put their own `effects` first."""
    settings: Settings = ctx["settings"]
    ctx["engine"] = make_engine(settings.database_url)
    ctx["policy"] = settings.policy()
    ctx["locks"] = [asyncio.Lock() for _ in range(LOCK_STRIPES)]
    ctx["committer"] = GroupCommit(ctx["engine"], ctx["policy"])
    if "effects" not in ctx:
        ctx["effects"] = build_effects(ctx, clock=ctx.get("clock", time.time))


async def shutdown(ctx: dict[str, Any]) -> None:
    for close in ctx.get("closers", []):
        await close()
    await ctx["engine"].dispose()


def worker_settings(settings: Settings, **ctx: Any) -> dict[str, Any]:
    """Keyword arguments for `arq.Worker`, built from validated settings (and extra ctx for tests)."""
    return {
        "functions": [
            func(timed_job(apply_webhook), max_tries=MAX_TRIES),
            func(timed_job(on_deadline), max_tries=MAX_TRIES, keep_result=0),
            func(timed_job(heartbeat), max_tries=MAX_TRIES),
        ],
        "cron_jobs": [
            cron(
                timed_job(sweep), second=set(range(0, 60, settings.warden_sweep_seconds)), run_at_startup=True
            ),
            cron(timed_job(reconcile), **settings.reconcile_schedule(), unique=True),  # type: ignore[arg-type]
        ],
        "queue_name": settings.warden_queue_name,
        "redis_settings": settings.arq_redis(),
        "on_startup": startup,
        "on_shutdown": shutdown,
        "ctx": {"settings": settings, **ctx},
        "job_timeout": JOB_TIMEOUT_SECONDS,
        "poll_delay": 0.01,
        "max_jobs": settings.warden_worker_concurrency,
    }

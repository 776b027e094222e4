"""The periodic jobs (ARQ crons).

- `sweep`: re-queues every overdue deadline, so a lost timer or a dead worker still fires; delivers
  what the outbox still holds (alerts and deploy hooks too); settles incidents none of whose rooms
  waits any more, and takes up their restarts a dead worker left unfinished.
- `reconcile`: compares Warden's open rooms with LiveKit's and records what differs: who is there, and
  (rooms whose agents are learned, with people) the dispatches, so that a dispatch made later is learned.
- `discover`: every `DISCOVER_TICK_SECONDS`, looks again at rooms with people that expect no agent yet
  (`no_agent_expected`): each every `WARDEN_DISCOVER_SECONDS` at most, at most
  `WARDEN_DISCOVER_CALLS_PER_SECOND` calls to LiveKit a second across all rooms.
- `prune`: deletes closed rooms and resolved incidents older than `WARDEN_RETENTION`, in small batches.

In `reconcile` and `discover` one room's failure is that room's alone (`_alone`): a room whose look
cannot be recorded (values the database cannot store, a bug its events meet) is logged at ERROR,
counted (`workers.store.runs.passed_over`) and passed over, and the other rooms are looked at and
confirmed; such a room, never confirmed, would otherwise come first in every run and stop it there. An
unavailable database or Redis (`workers.store.runs.ends_the_run`) still ends the run.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable
from dataclasses import replace
from typing import Any, TypeVar

from redis.exceptions import RedisError
from sqlalchemy.exc import SQLAlchemyError

from workers.core.canary import is_canary_room
from workers.core.errors import UpstreamError
from workers.core.events import Event, EventKind, Fact, Participant, internal
from workers.core.machine import changes
from workers.core.presence import RECONCILE_GRACE_SECONDS
from workers.core.room import Phase, Room
from workers.jobs.delivery.outbox import deliver_overdue
from workers.jobs.rooms.recording import record
from workers.jobs.runtime.context import context
from workers.jobs.runtime.metrics import count_pruned
from workers.queue.jobs import queue_deadline
from workers.store.queries import known_sids, load_rooms, open_rooms, overdue_deadlines, unconfirmed
from workers.store.retention import prune as prune_older
from workers.store.runs import ends_the_run, passed_over
from workers.store.writer import confirm

log = logging.getLogger("warden.worker")

SWEEP_GRACE_SECONDS = 2.0

T = TypeVar("T")


async def sweep(ctx: dict[str, Any]) -> int:
    """Cron: queue the deadline job of every room whose deadline is overdue (return how many were queued),
    deliver what the outbox still holds, and resolve an incident none of whose rooms waits any more. Each
    of the three goes ahead when one before it failed (logged; the next sweep tries it again)."""
    worker = context(ctx)
    effects = worker.effects
    queued = 0
    try:
        due = await overdue_deadlines(worker.engine, effects.clock() - SWEEP_GRACE_SECONDS)
        for room_sid, attempt in due:
            await queue_deadline(effects.enqueuer, room_sid, attempt)
            queued += 1
    except (SQLAlchemyError, RedisError, OSError) as exc:
        log.warning("queueing overdue deadlines failed: %s", type(exc).__name__)
    try:
        lease = worker.settings.warden_claim_lease_seconds
        await deliver_overdue(effects, worker.engine, worker.delivered, lease=lease)
    except (SQLAlchemyError, RedisError, OSError) as exc:
        log.warning("delivering the outbox failed: %s", type(exc).__name__)
    try:
        await effects.incidents.settle()
    except (SQLAlchemyError, RedisError, OSError) as exc:
        log.warning("settling incidents failed: %s", type(exc).__name__)
    return queued


async def reconcile(ctx: dict[str, Any]) -> dict[str, int]:
    """Cron: compare Warden's open rooms with LiveKit's. Rooms LiveKit no longer has are closed; rooms
    Warden never heard of are adopted; who is in the room is corrected. A room found as Warden knows
    it gets no event, only its `confirmed_at`. At most `WARDEN_RECONCILE_BATCH` rooms are asked about
    per run (unknown rooms first, then those Warden has heard from or confirmed least recently), so the
    cost stays bounded with many rooms."""
    worker = context(ctx)
    settings, effects = worker.settings, worker.effects
    listed_at = effects.clock()
    try:
        livekit_rooms = dict(await effects.presence.list_rooms())
    except UpstreamError as exc:
        log.warning("reconciliation skipped, LiveKit unavailable: %s", exc)
        return {}
    known = await open_rooms(worker.engine)
    now = effects.clock()
    # A room Warden heard of after (or just before) the listing may simply be missing from it.
    gone = [
        (sid, name)
        for sid, (name, updated, _) in known.items()
        if sid not in livekit_rooms and updated < listed_at - RECONCILE_GRACE_SECONDS
    ]
    seen = await known_sids(worker.engine, [sid for sid in livekit_rooms if sid not in known])
    unknown = [
        (sid, name)
        for sid, name in livekit_rooms.items()
        if sid not in known and sid not in seen and settings.watches(name) and not is_canary_room(name)
    ]
    by_age = sorted(
        (max(updated, confirmed), sid, name)
        for sid, (name, updated, confirmed) in known.items()
        if sid in livekit_rooms
    )
    to_ask = (unknown + [(sid, name) for _, sid, name in by_age])[: settings.warden_reconcile_batch]
    for sid, name in gone:
        await _alone(
            "reconcile", name, record(ctx, [(_reconciled(sid, name, Fact(at=now, room_exists=False)), now)])
        )
    legacy = worker.rules.legacy_agent
    rooms = await load_rooms(worker.engine, [sid for sid, _ in to_ask if sid in known], legacy_agent=legacy)
    confirmed = []
    for sid, name in to_ask:
        room = rooms.get(sid)
        # The dispatches too where they can teach an agent: learned rooms with people in them.
        listens = room is not None and _listens(room)
        looked = await _alone("reconcile", name, look(ctx, sid, name, room, dispatches=listens))
        if looked:
            confirmed.append(sid)
    await confirm(worker.engine, confirmed, effects.clock())
    return {
        "closed": len(gone),
        "adopted": len(unknown[: len(to_ask)]),
        "asked": len(to_ask),
        "confirmed": len(confirmed),
    }


async def discover(ctx: dict[str, Any]) -> dict[str, int]:
    """Cron (every `DISCOVER_TICK_SECONDS`): look again at rooms with people that expect no agent yet
    (`no_agent_expected`: LiveKit named none when asked), so that an agent the application dispatches
    later is learned and watched from its dispatch. Each such room is looked at (ListParticipants and
    ListDispatch, recorded as a reconciliation when it is news) once no check has confirmed it for
    `WARDEN_DISCOVER_SECONDS`, least recently confirmed first, at most `Settings.discover_batch` rooms a
    run: `WARDEN_DISCOVER_CALLS_PER_SECOND` bounds the calls across all rooms."""
    worker = context(ctx)
    settings, clock = worker.settings, worker.effects.clock
    due = await unconfirmed(
        worker.engine,
        Phase.NO_AGENT_EXPECTED,
        clock() - settings.warden_discover_seconds,
        settings.discover_batch,
    )
    legacy = worker.rules.legacy_agent
    rooms = await load_rooms(worker.engine, [sid for sid, _ in due], legacy_agent=legacy)
    looked = []
    for sid, name in due:
        if await _alone("discover", name, look(ctx, sid, name, rooms.get(sid), dispatches=True)) is not None:
            looked.append(sid)
    await confirm(worker.engine, looked, clock())  # news or not, looked at now: next in its own time
    return {"due": len(due), "looked": len(looked)}


async def _alone(run: str, name: str, work: Awaitable[T]) -> T | None:
    """`work` on one room; None when it failed on its own (`workers.store.runs.passed_over`: the run goes
    on with the other rooms). What ends the run (`ends_the_run`: a `Retry`, an outage) is raised."""
    try:
        return await work
    except BaseException as exc:
        if ends_the_run(exc):
            raise
        passed_over(run, "room", name, exc)
        return None


def _listens(room: Room) -> bool:
    """Can the room's dispatches teach Warden an agent? Its own watch is over, and people are there."""
    return room.learned and room.someone_here and room.finished_at is None


async def look(
    ctx: dict[str, Any], sid: str, name: str, room: Room | None, *, dispatches: bool
) -> bool | None:
    """List who is in the room (and its `dispatches`) and record it as a reconciliation when that is news
    to Warden. True: found as Warden knows it (nothing recorded); False: recorded; None: LiveKit did not
    answer (logged, skipped)."""
    presence, clock = context(ctx).effects.presence, context(ctx).effects.clock
    try:
        present = await presence.participants(name)
        # Nobody there (livekit-server lists a room that ended since as empty, and would answer its
        # ListDispatch with a 503 after 3 s): no agent to learn for anyone.
        listed = await presence.listed_dispatches(name) if dispatches and present else ()
    except UpstreamError as exc:
        log.warning("looking at room %s skipped: %s", name, exc)
        return None
    fact = Fact(at=clock(), room_exists=present is not None, participants=present or (), dispatches=listed)
    return await record_if_news(ctx, sid, name, room, fact)


async def record_if_news(
    ctx: dict[str, Any],
    sid: str,
    name: str,
    room: Room | None,
    fact: Fact,
    seen: tuple[Participant, ...] | None = None,
) -> bool:
    """Record a look's `fact` as a reconciliation when it is news to Warden, compared with the room as
    listing `seen` (the liveness look's, `liveness.quiet_turns`) or else the fact's participants. True:
    found as Warden knows it (nothing recorded); False: recorded."""
    event = _reconciled(sid, name, fact)
    if room is not None:
        compared = event if seen is None else _reconciled(sid, name, replace(fact, participants=seen))
        if not changes(room, compared, now=fact.at, rules=context(ctx).rules):
            return True  # nothing to correct: not worth a line in the room's log
    await record(ctx, [(event, fact.at)])
    return False


def _reconciled(sid: str, name: str, fact: Fact) -> Event:
    return internal(EventKind.RECONCILED, f"reconciled:{sid}:{fact.at:.3f}", sid, name, fact)


async def canaries(ctx: dict[str, Any]) -> dict[str, str]:
    """Cron (every second, on one worker a tick): the canaries that are due run (`workers.jobs.canaries`),
    each agent's one at a time across all workers; what each came to."""
    runner = context(ctx).canaries
    return await runner.tick() if runner is not None else {}


async def prune(ctx: dict[str, Any]) -> dict[str, int]:
    """Cron (every 15 s): delete what is older than `WARDEN_RETENTION` (see `workers.store.retention`);
    returns how many rows went, by table."""
    worker = context(ctx)
    cutoff = worker.effects.clock() - worker.settings.retention_seconds
    pruned = await prune_older(worker.engine, cutoff)
    count_pruned(pruned)
    if pruned:
        log.info("retention: deleted %s", ", ".join(f"{n} {what}" for what, n in pruned.items()))
    return pruned

"""Delivering the outbox (`workers.store.outbox`): a recording job's notices at once, what was left
behind from the sweep. Deadlines and first dispatches are carried out here; a failed room goes to its
agent's incidents as a job of its own (`report_to_incident`, one per notice), so that restarts, alerts
and their retries never run under a room job's timeout. So do a breach and a recovery, unless the
room's job can report them at once without any of that (`Effects.fold_report`: a breach that only
counts or joins the room to the open incident this process knows, a recovery while this process
knows the incident open): during an outage that is most of them, a job less each. The sweep queues
every report as its job.

Outgoing calls (alerts, incident events, deploy hooks: no room) go to the incidents, which note every
attempt in the incident's log and says when to stop trying (`workers.escalation.couriers`).

Delivered rows are deleted in batches a moment later (`Delivered`): a crash before that only means
the sweep delivers them again, which every receiver takes calmly.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence

from redis.exceptions import RedisError
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from workers.core.errors import UpstreamError
from workers.core.observing import ACTING
from workers.core.outgoing import Alert, DeployHook, IncidentEvent
from workers.core.room import ReportBreach, ReportFailed, ReportRecovered, Room, action_to_dict
from workers.jobs.rooms.effects import Effects
from workers.queue.jobs import queue_incident_report
from workers.store import outbox
from workers.store.outbox import Pending
from workers.store.writer import load_room

log = logging.getLogger("warden.delivery")

FLUSH_SECONDS = 0.2
TRANSIENT = (UpstreamError, RedisError, SQLAlchemyError, OSError)


class Delivered:
    """Ids of delivered notices, deleted from the outbox together every `FLUSH_SECONDS`."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._ids: list[str] = []
        self._flushing: asyncio.Task[None] | None = None
        self._closing = asyncio.Event()
        # One flush at a time: a flush called while the timed one is deleting returns only after it, so
        # whoever flushes (a job, the sweep, shutdown) finds every id added before it out of the outbox.
        self._one_at_a_time = asyncio.Lock()

    def add(self, ids: Sequence[str]) -> None:
        if not ids:
            return
        self._ids.extend(ids)
        if self._flushing is None or self._flushing.done():
            self._flushing = asyncio.create_task(self._flush_soon())

    async def _flush_soon(self) -> None:
        # Gather the ids of the jobs finishing meanwhile; at shutdown, flush at once.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._closing.wait(), FLUSH_SECONDS)
        await self.flush()

    async def flush(self) -> None:
        async with self._one_at_a_time:
            ids, self._ids = self._ids, []
            try:
                await outbox.done(self._engine, ids)
            except (SQLAlchemyError, OSError) as exc:  # delivered again by the sweep: harmless
                log.warning("%d delivered notice(s) not cleared: %s", len(ids), type(exc).__name__)

    async def close(self) -> None:
        self._closing.set()
        if self._flushing is not None:
            await self._flushing
        await self.flush()


async def send(effects: Effects, notice: Pending, room: Room | None, *, fold: bool = False) -> None:
    """Deliver one notice (a room's, with its `room`, carried out for the expected agent it is about;
    an outgoing call has none); raises one of `TRANSIENT` when it could not be delivered now. With
    `fold` (the room's own job delivering), a breach or a recovery is reported at once where that is
    cheap (`Effects.fold_report`), else queued as its job."""
    action = notice.action
    if isinstance(action, Alert | DeployHook | IncidentEvent):
        await effects.incidents.deliver(notice)
    elif room is None:
        return  # the room is gone: nothing to act on
    elif isinstance(action, ReportFailed | ReportBreach | ReportRecovered):
        if fold and not isinstance(action, ReportFailed) and await _folded(effects, notice.id, action, room):
            return
        await queue_incident_report(effects.enqueuer, notice.id, room.sid, action_to_dict(action))
    else:
        await effects.execute(action, room)


async def _folded(
    effects: Effects, notice_id: str, action: ReportBreach | ReportRecovered, room: Room
) -> bool:
    """Report `action` from the room's job; False when it is to be queued as its job after all: it needs
    one, or it failed here (its job retries it, or keeps it as a dead letter, as it would have)."""
    try:
        return await effects.fold_report(action, room)
    except Exception as exc:
        level = logging.WARNING if isinstance(exc, TRANSIENT) else logging.ERROR
        log.log(level, "%s %s: queued as its job (%s)", type(action).__name__, notice_id, type(exc).__name__)
        return False


async def deliver(effects: Effects, delivered: Delivered, notices: Sequence[Pending], room: Room) -> None:
    """A recording job's notices, at once (a breach or a recovery reported here where that is cheap,
    see `send`). What fails stays in the outbox for the sweep."""
    done: list[str] = []
    for notice in notices:
        try:
            await send(effects, notice, room, fold=True)
        except TRANSIENT as exc:
            what = str(exc) if isinstance(exc, UpstreamError) else type(exc).__name__
            log.warning("%s for room %s left for the sweep: %s", notice.action_name, room.name, what)
            continue
        done.append(notice.id)
    delivered.add(done)


async def deliver_overdue(
    effects: Effects, engine: AsyncEngine, delivered: Delivered, *, lease: float = outbox.LEASE_SECONDS
) -> int:
    """The sweep's part: lease what is left in the outbox (for `lease` seconds) and deliver it; returns
    how many were sent. In act mode, a notice observe mode decided (not carried out in the room's log)
    is dropped unsent: act decides afresh (`workers.core.observing`, rule 3). In observe mode, one act
    mode decided is made nothing of by the gate, and its decision's line says so (`outbox.withheld`)."""
    sent: list[str] = []
    dropped: list[str] = []
    calls = 0
    due = await outbox.due(engine, effects.clock(), lease=lease)
    # left behind by observe mode (its worker died before delivering): act mode decides afresh
    acting = [n.id for n in due if isinstance(n.action, ACTING)] if not effects.rules.observe else []
    observed = await outbox.not_carried_out(engine, acting)
    # left behind by act mode, delivered in observe mode: its gate makes nothing, and the log says so
    gated = {n.id for n in due if isinstance(n.action, ACTING)} if effects.rules.observe else set()
    withheld: list[str] = []
    for notice in due:
        if notice.id in observed:
            log.info("%s %s: decided in observe mode, not carried out now", notice.action_name, notice.id)
            dropped.append(notice.id)
            continue
        room = None if notice.outgoing else await load_room(engine, notice.room_sid)
        try:
            await send(effects, notice, room)
        except TRANSIENT as exc:
            await outbox.failed(engine, notice, effects.clock(), str(exc) or type(exc).__name__)
            continue
        except Exception as exc:  # a bug in one notice's delivery must not stop the others'
            log.exception("delivering %s %s failed", notice.action_name, notice.id)
            await outbox.failed(engine, notice, effects.clock(), f"{type(exc).__name__}: {exc}")
            continue
        if notice.outgoing:  # an alert or a hook: forgotten at once, so that no other sweep sends it again
            await outbox.done(engine, [notice.id])
            calls += 1
        else:
            sent.append(notice.id)
            if notice.id in gated:
                withheld.append(notice.id)
    await outbox.withheld(engine, withheld)
    delivered.add(sent + dropped)
    return len(sent) + calls

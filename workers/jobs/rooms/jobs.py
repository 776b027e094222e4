"""The room jobs: fold events into rooms and carry out what the rooms need.

- `apply_webhook(event)`: record one reduced webhook; schedule the deadline it sets, if any.
- `on_deadline(room_sid, attempt)`: the timer. Records DEADLINE_PASSED, then works through the room's
  pending questions (check presence → evict → re-dispatch), recording each answer before the next
  step, so a job that dies half-way is finished by its retry or by the sweep, never done twice.
  Single-flight: its id is `deadline:{sid}:{attempt}` and no result is kept, so it can be queued
  again (by the sweep) only once it is no longer queued or running. A job whose room missed its
  deadline also takes the other deadline jobs due with it out of the queue and does their work in
  batches (`workers.jobs.rooms.burst`): a burst of deadlines falling due together.
- `heartbeat(room_name, identity)`: an agent says it is working (recorded only when that is news).
- `fresh_start(room_sid, room_name, incident_id, agent, wait)`: called by the escalation after a restart.

Every job may run twice; recording is idempotent by event id, per-room writes are serialised by the
database (row lock and version) and, inside one process, by a striped lock.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from arq.worker import Retry

from workers.core.canary import is_canary_room
from workers.core.errors import UpstreamError
from workers.core.events import Event, EventKind, Fact, Participant, internal
from workers.core.machine import changes, transition
from workers.core.plain import from_plain
from workers.core.room import Action, CheckPresence, Recovery, Room
from workers.jobs.canaries.runner import heard as canary_heard
from workers.jobs.rooms.burst import lead
from workers.jobs.rooms.recording import record
from workers.jobs.rooms.steps import MAX_STEPS, deadline_passed, next_question
from workers.jobs.runtime.context import context
from workers.jobs.runtime.retry import retry_later
from workers.queue.jobs import agent_key
from workers.store.writer import confirm, load_room, load_room_named


async def apply_webhook(ctx: dict[str, Any], event: dict[str, Any], received_at: float) -> str:
    """Job: record one reduced webhook (see `workers.core.events`) and fold it into its room. A
    canary's room is no user room: its webhooks only tell a canary its agent came."""
    reduced = from_plain(Event, event)
    if is_canary_room(reduced.room_name):
        return await canary_heard(ctx["redis"], reduced)
    return str((await record(ctx, [(reduced, received_at)])).outcome)


async def _ask(ctx: dict[str, Any], question: Action, room: Room) -> Event | None:
    """Carry out a question to LiveKit; a retryable failure makes ARQ run the job again later."""
    try:
        return await context(ctx).effects.execute(question, room)
    except UpstreamError as exc:
        raise retry_later(
            ctx, "LiveKit unavailable for room %s (%s); retried in %.0fs", room.name, exc
        ) from exc


async def on_deadline(ctx: dict[str, Any], room_sid: str, attempt: int) -> str:
    """Job: a room's deadline `attempt` is due (attempts are numbered room-wide: it is one expected
    agent's). Ask LiveKit, then act on the answer, step by step. A room that missed its deadline also
    has its job lead the deadlines due with it (`burst.lead`), in batches, while it does its own."""
    worker = context(ctx)
    room = await load_room(worker.engine, room_sid, legacy_agent=worker.rules.legacy_agent)
    view = room.for_attempt(attempt) if room is not None else None
    if room is None or view is None or view.deadline is None:
        return "stale"
    if view.recovery is not Recovery.NONE:  # asked already: the steps left
        return await _steps(ctx, room, view.agent, attempt)
    now = worker.effects.clock()
    if now < view.deadline.at:
        raise Retry(defer=view.deadline.at - now)  # early (clock skew, or a sweep that ran ahead)
    others = lead(ctx)  # None: no more batches in this process at once
    try:
        return await _missed(ctx, room, view.agent, attempt, now)
    finally:
        if others is not None:
            await others


async def _missed(ctx: dict[str, Any], room: Room, agent: str, attempt: int, now: float) -> str:
    """The room's deadline `attempt` for `agent` passed: decide in memory, ask LiveKit, then commit the
    deadline and LiveKit's answer together (one write instead of two; a job that dies before the commit
    leaves the deadline due, to be re-run), then the steps that follow."""
    worker = context(ctx)
    fired = deadline_passed(room.sid, room.name, attempt, now, agent)
    decided = transition(room, fired, now=now, rules=worker.rules)
    batch = [(fired, now)]
    for question in decided.actions:
        if isinstance(question, CheckPresence) and question.attempt == attempt:
            answer = await _ask(ctx, question, decided.room)
            if answer is not None:
                batch.append((answer, worker.effects.clock()))
    return await _steps(ctx, (await record(ctx, batch)).room, agent, attempt)


async def _steps(ctx: dict[str, Any], current: Room | None, agent: str, attempt: int) -> str:
    """The steps of the room's deadline `attempt` left (evict, re-dispatch), each answer recorded before
    the next; the recovery of `agent` after them."""
    clock = context(ctx).effects.clock
    for _ in range(MAX_STEPS):
        step = next_question(current, attempt)
        if current is None or step is None:
            break
        answer = await _ask(ctx, step, current)
        if answer is None:
            break
        current = (await record(ctx, [(answer, clock())])).room
    if current is None:
        return "no room"
    return str(current.view_for(agent).recovery)


async def heartbeat(ctx: dict[str, Any], room_name: str, identity: str, at: float) -> str:
    """Job: an agent in `room_name` says it is working (counts as activity for the stall check). An
    agent Warden already knows as active is news to nobody: the room is marked confirmed, no event."""
    worker = context(ctx)
    if is_canary_room(room_name):
        return "canary"
    event = internal(
        EventKind.HEARTBEAT,
        f"heartbeat:{agent_key(room_name, identity)}:{at:.3f}",  # names run long: the event id may not
        "",
        room_name,
        Fact(at=at),
        participant=Participant(identity),
    )
    room = await load_room_named(worker.engine, room_name, legacy_agent=worker.rules.legacy_agent)
    if room is not None and not changes(room, replace(event, room_sid=room.sid), now=at, rules=worker.rules):
        await confirm(worker.engine, [room.sid], at)
        return "confirmed"
    return str((await record(ctx, [(event, at)])).outcome)


async def fresh_start(
    ctx: dict[str, Any],
    room_sid: str,
    room_name: str,
    incident_id: str,
    agent: str = "",
    wait: float | None = None,
    *,
    observed: bool = False,
) -> None:
    """After a restart of `agent`: give its part of a waiting room a fresh start (see
    `EventKind.AGENT_RESTARTED`), re-checked `wait` seconds later (None: the restart grace). A second
    fresh start with a `wait`, once the agent's deployment is known to be back, is an event of its own.
    `observed`: act mode taking over a room observe mode decided for (`workers.core.observing`)."""
    at = context(ctx).effects.clock()
    event = internal(
        EventKind.AGENT_RESTARTED,
        f"agent_restarted:{incident_id}:{room_sid}" + ("" if wait is None else ":back"),
        room_sid,
        room_name,
        Fact(at=at, agent=agent, wait=wait, observed=observed),
    )
    await record(ctx, [(event, at)])

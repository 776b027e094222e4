"""The `operator_action` job (issue 28): what an operator asked for by hand through the API, the
dashboard or the CLI, applied by the worker through the machines, never by the web process itself.

- `ack` / `restart` of an incident: a step of its agent's incident machine (ACKNOWLEDGED,
  RESTART_ASKED), carried out as any step is: its alerts through the outbox, its restart claimed for the
  deployment under its lease and cooldown (`workers.escalation.agents.Incidents.by_hand`).
- `redispatch` of one agent in a room: `REDISPATCH_ASKED`, one of Warden's own events, folded into the
  room (its timeline shows it, with who asked): a check due at once, whose answer re-dispatches as
  Warden's own checks do, never while an agent of that name is there or a dispatch may still bring it.

The web refused what it could see was wrong (404, 409) before queueing; what changed meanwhile, the
machines refuse, in the incident's log or the room's timeline.
"""

from __future__ import annotations

from typing import Any

from redis.exceptions import RedisError
from sqlalchemy.exc import SQLAlchemyError

from workers.core.errors import UpstreamError
from workers.core.events import EventKind, Fact, internal
from workers.core.incident_values import Signal
from workers.jobs.rooms.recording import record
from workers.jobs.runtime.context import context
from workers.jobs.runtime.retry import retry_later
from workers.queue.jobs import ACK, REDISPATCH, RESTART, agent_key
from workers.store.writer import load_room_named

_SIGNALS = {ACK: Signal.ACKNOWLEDGED, RESTART: Signal.RESTART_ASKED}


async def operator_action(
    ctx: dict[str, Any], action: str, target: str, by: str, at: float, agent: str = ""
) -> str:
    """Job: the operator `by`'s `action` on incident `target` (`ack`, `restart`) or on agent `agent` of
    room `target` (`redispatch`), asked for at `at`."""
    worker = context(ctx)
    if action == REDISPATCH:
        room = await load_room_named(worker.engine, target, legacy_agent=worker.rules.legacy_agent)
        if room is None:
            return "no room"
        event = internal(
            EventKind.REDISPATCH_ASKED,
            f"redispatch_asked:{agent_key(room.sid, agent)}:{at:.3f}",
            room.sid,
            room.name,
            Fact(at=worker.effects.clock(), agent=agent, by=by),
        )
        return str((await record(ctx, [(event, event.at)])).outcome)
    signal = _SIGNALS.get(action)
    if signal is None:
        return f"unknown action {action!r}"
    try:
        return await worker.effects.incidents.by_hand(signal, target, by)
    except (UpstreamError, RedisError, SQLAlchemyError, OSError) as exc:
        raise retry_later(
            ctx,
            "operator's %s of incident %s failed (%s); retried in %.0fs",
            action,
            target,
            type(exc).__name__,
        ) from exc

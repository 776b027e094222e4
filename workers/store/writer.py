"""Record one event and fold it into its room, exactly once, in one transaction.

- The event row is unique on the event id (`INSERT ... ON CONFLICT DO NOTHING`): a duplicate
  (LiveKit's retry, ARQ re-running a job) changes nothing.
- The room row is read `FOR UPDATE` (PostgreSQL; SQLite's writers are serialised by BEGIN IMMEDIATE),
  so writers of one room queue instead of colliding, and it carries a `version`: the write is
  `UPDATE ... WHERE version = <read>`, so two writers that read the same room can never both write;
  the loser re-reads and tries again (`StaleWrite`). Event and room are committed together, so
  neither exists without the other.
- An event older than the newest one applied (by `rooms.order_key`) arrived out of order: the room
  is re-folded from its whole log, so the state is always the fold of the events in LiveKit's order.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from workers.core.errors import StaleWrite
from workers.core.events import Event, from_dict, to_dict
from workers.core.machine import fold, new_actions, order_key, transition
from workers.core.room import (
    Action,
    Policy,
    Room,
    action_to_dict,
    room_from_dict,
    room_to_dict,
    time_to_agent,
)
from workers.store.engine import writing
from workers.store.models import EVENTS, ROOMS

MAX_ATTEMPTS = 20


ACTION_KIND = "action"


class Outcome(StrEnum):
    APPLIED = "applied"
    REFOLDED = "refolded"
    DUPLICATE = "duplicate"
    NO_ROOM = "no_room"


@dataclass(frozen=True)
class Recorded:
    """What recording did: the outcome, the room as it now stands, and the actions newly decided."""

    outcome: Outcome
    room: Room | None = None
    actions: tuple[Action, ...] = ()
    before: Room | None = None  # the room before this recording (None for a room new to Warden)


async def record_event(engine: AsyncEngine, event: Event, *, received_at: float, policy: Policy) -> Recorded:
    """Store `event` and update its room; retry on a concurrent writer. Safe to call twice."""
    return await record_events(engine, [(event, received_at)], policy=policy)


async def record_events(
    engine: AsyncEngine, batch: Sequence[tuple[Event, float]], *, policy: Policy
) -> Recorded:
    """Store events of one room, in order, and fold them in: one transaction, retried on a concurrent
    writer. Used for a question and its answer (a deadline and what LiveKit said), which belong together."""
    for _ in range(MAX_ATTEMPTS):
        try:
            async with writing(engine) as connection:
                return await record_once(connection, batch, policy)
        except (StaleWrite, IntegrityError):
            continue
    raise StaleWrite(f"room {batch[0][0].room_sid} kept changing under {MAX_ATTEMPTS} attempts")


async def load_room(engine: AsyncEngine, sid: str) -> Room | None:
    """The room's current state, or None if Warden has never heard of it."""
    async with engine.connect() as connection:
        state = await connection.scalar(select(ROOMS.c.state).where(ROOMS.c.sid == sid))
    return room_from_dict(state) if state is not None else None


async def record_once(
    connection: AsyncConnection, batch: Sequence[tuple[Event, float]], policy: Policy
) -> Recorded:
    sid = batch[0][0].room_sid or await _sid_by_name(connection, batch[0][0].room_name)
    batch = [(replace(e, room_sid=sid), at) if e.room_sid != sid else (e, at) for e, at in batch]
    fresh = [(e, at) for e, at in batch if await _insert_event(connection, e, at)]
    if not sid:
        return Recorded(Outcome.NO_ROOM if fresh else Outcome.DUPLICATE)
    if not fresh:
        state = await connection.scalar(select(ROOMS.c.state).where(ROOMS.c.sid == sid))
        return Recorded(Outcome.DUPLICATE, room_from_dict(state) if state is not None else None)
    received_at = fresh[-1][1]
    # FOR UPDATE queues concurrent writers of one room on PostgreSQL (SQLite's BEGIN IMMEDIATE already
    # does); the version check below still catches any writer that slipped past.
    row = (await connection.execute(select(ROOMS).where(ROOMS.c.sid == sid).with_for_update())).first()
    if row is None:
        folded = await fold_fresh(connection, sid, fresh, policy)
        values = room_values(folded.room, folded.key, received_at)
        await connection.execute(insert(ROOMS).values(**values, version=1, first_seen_at=received_at))
        await _log_actions(connection, folded.decided)
        return Recorded(Outcome.APPLIED, folded.room, all_actions(folded.decided))
    before = room_from_dict(row.state)
    folded = await fold_fresh(
        connection, sid, fresh, policy, before=before, key=(row.last_created_at, row.last_rank), name=row.name
    )
    result = await connection.execute(
        update(ROOMS)
        .where(ROOMS.c.sid == sid, ROOMS.c.version == row.version)
        .values(**room_values(folded.room, folded.key, received_at), version=row.version + 1)
    )
    if result.rowcount != 1:
        raise StaleWrite(f"room {sid} changed since it was read")
    await _log_actions(connection, folded.decided)
    return Recorded(folded.outcome, folded.room, all_actions(folded.decided), before)


Decided = list[tuple[Event, float, tuple[Action, ...]]]


@dataclass(frozen=True)
class Folded:
    """A room with its new events folded in: the outcome, the room, its order key, and the decisions
    with the events that caused them."""

    outcome: Outcome
    room: Room
    key: tuple[int, int]
    decided: Decided


async def fold_fresh(
    connection: AsyncConnection,
    sid: str,
    fresh: Sequence[tuple[Event, float]],
    policy: Policy,
    *,
    before: Room | None = None,
    key: tuple[int, int] = (0, 0),
    name: str = "",
) -> Folded:
    """Fold events new to Warden (already inserted) into the room `before` (None: a room new to Warden),
    whose newest applied event has order `key`. An event older than that re-folds the room from its
    whole log; nothing is written here."""
    last_event, received_at = fresh[-1]
    decided: Decided = []
    if before is None:
        room = Room(sid, last_event.room_name)
        for event, at in sorted(fresh, key=lambda pair: order_key(pair[0])):
            decision = transition(room, event, now=at, policy=policy)
            room = decision.room
            decided.append((event, at, decision.actions))
        return Folded(Outcome.APPLIED, room, max(order_key(e) for e, _ in fresh), decided)
    room, outcome = before, Outcome.APPLIED
    for event, at in fresh:
        if order_key(event) >= key:
            decision = transition(room, event, now=at, policy=policy)
            room, key = decision.room, order_key(event)
            decided.append((event, at, decision.actions))
        else:  # late: re-fold the whole log, this batch included (it is inserted already)
            room = fold(Room(sid, name), await room_events(connection, sid), policy=policy)
            outcome, decided = (
                Outcome.REFOLDED,
                [(last_event, received_at, new_actions(before, room, policy))],
            )
            key = max([key, *(order_key(e) for e, _ in fresh)])
            break
    if not room.name and last_event.room_name:
        room = replace(room, name=last_event.room_name)
    return Folded(outcome, room, key, decided)


def all_actions(decided: Decided) -> tuple[Action, ...]:
    return tuple(action for _, _, actions in decided for action in actions)


async def _sid_by_name(connection: AsyncConnection, name: str) -> str:
    """The newest room of that name (for events that know only the name, such as heartbeats)."""
    if not name:
        return ""
    found = await connection.scalar(
        select(ROOMS.c.sid).where(ROOMS.c.name == name).order_by(ROOMS.c.first_seen_at.desc()).limit(1)
    )
    return str(found) if found else ""


def event_row(event: Event, received_at: float) -> dict[str, Any]:
    """The event log's row for `event`."""
    return {
        "event_id": event.id,
        "room_sid": event.room_sid or None,
        "kind": str(event.kind),
        "name": event.name,
        "participant_identity": event.participant.identity if event.participant else None,
        "created_at": event.created_at,
        "received_at": received_at,
        "data": to_dict(event),
    }


def _insert_event_statement(insert_for: Any) -> Any:
    return insert_for(EVENTS).on_conflict_do_nothing(index_elements=["event_id"]).returning(EVENTS.c.seq)


# Built once: constructing a statement with .values() per call costs more than executing it.
_INSERT_EVENT = {
    "postgresql": _insert_event_statement(postgresql_insert),
    "sqlite": _insert_event_statement(sqlite_insert),
}


async def _insert_event(connection: AsyncConnection, event: Event, received_at: float) -> bool:
    """Insert the event unless its id is known; True when it was new."""
    statement = _INSERT_EVENT[connection.dialect.name]
    return await connection.scalar(statement, event_row(event, received_at)) is not None


def action_rows(decided: list[tuple[Event, float, tuple[Action, ...]]]) -> list[dict[str, Any]]:
    """Decisions go into the room's log beside the events that caused them (never folded)."""
    return [
        {
            "event_id": f"{event.id}#{i}",
            "room_sid": event.room_sid,
            "kind": ACTION_KIND,
            "name": type(action).__name__,
            "participant_identity": None,
            "created_at": event.created_at,
            "received_at": received_at,
            "data": action_to_dict(action),
        }
        for event, received_at, actions in decided
        for i, action in enumerate(actions)
    ]


async def _log_actions(
    connection: AsyncConnection, decided: list[tuple[Event, float, tuple[Action, ...]]]
) -> None:
    rows = action_rows(decided)
    if rows:
        await connection.execute(insert(EVENTS), rows)


def room_values(room: Room, key: tuple[int, int], received_at: float) -> dict[str, Any]:
    return {
        "sid": room.sid,
        "name": room.name,
        "phase": str(room.phase),
        "state": room_to_dict(room),
        "last_created_at": key[0],
        "last_rank": key[1],
        "updated_at": received_at,
        "deadline_at": room.deadline.at if room.deadline is not None else None,
        "recovery": str(room.recovery),
        "time_to_agent": time_to_agent(room),
    }


async def room_events(connection: AsyncConnection, room_sid: str) -> list[tuple[Event, float]]:
    rows = await connection.execute(
        select(EVENTS.c.data, EVENTS.c.received_at)
        .where(EVENTS.c.room_sid == room_sid, EVENTS.c.kind != ACTION_KIND)
        .order_by(EVENTS.c.seq)
    )
    return [(from_dict(dict(data)), received_at) for data, received_at in rows]

"""Group commit: record the events of many rooms in one transaction with a handful of statements.

Under load a worker runs dozens of jobs at once, each recording one room's events. Done one by one,
each costs a transaction of four statements, and SQLAlchemy's per-statement work, not the database,
is what limits the worker. `GroupCommit.record` hands a room's batch to a flusher that takes every
batch waiting (one per room, so that each room's order is plain) and records them together:

1. insert every event (`INSERT ... ON CONFLICT DO NOTHING RETURNING event_id`, one multi-row
   statement): the ids returned are the events new to Warden, the rest are duplicates;
2. read every room concerned (`SELECT ... WHERE sid IN (...) ORDER BY sid FOR UPDATE`: rows locked
   in one order, so two workers never deadlock);
3. fold the new events into the rooms in memory, with the same rules as `store.record_events`;
4. insert the new rooms, update the others, and log the decisions: one executemany each.

The rows stay locked until the commit (PostgreSQL's FOR UPDATE; SQLite's BEGIN IMMEDIATE holds the
only write lock), so no other writer can change a room between its read and its update. A room that
another worker inserted meanwhile makes the insert fail: the whole group is then recorded again one
room at a time by `store.record_events` (which retries on such conflicts). At low load a flush holds
one batch, and costs what recording it alone would. Each caller gets exactly what
`store.record_events` would have returned for its batch.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from workers.core.errors import StaleWrite
from workers.core.events import Event
from workers.core.room import Policy, Room, room_from_dict
from workers.store.engine import writing
from workers.store.models import EVENTS, ROOMS
from workers.store.writer import (
    Decided,
    Outcome,
    Recorded,
    action_rows,
    all_actions,
    event_row,
    fold_fresh,
    record_events,
    record_once,
    room_values,
)

Batch = Sequence[tuple[Event, float]]

MAX_GROUP = 500


def _insert_events(insert_for: Any) -> Any:
    return insert_for(EVENTS).on_conflict_do_nothing(index_elements=["event_id"]).returning(EVENTS.c.event_id)


_INSERT_EVENTS = {"postgresql": _insert_events(postgresql_insert), "sqlite": _insert_events(sqlite_insert)}
_SELECT_ROOMS = (
    select(ROOMS)
    .where(ROOMS.c.sid.in_(bindparam("sids", expanding=True)))
    .order_by(ROOMS.c.sid)
    .with_for_update()
)
_INSERT_ROOMS = insert(ROOMS)
_UPDATE_ROOMS = (
    update(ROOMS)
    .where(ROOMS.c.sid == bindparam("b_sid"))
    .values(
        {
            column: bindparam(column)
            for column in (
                "name",
                "phase",
                "state",
                "last_created_at",
                "last_rank",
                "updated_at",
                "deadline_at",
                "recovery",
                "time_to_agent",
                "version",
            )
        }
    )
)
_INSERT_ACTIONS = insert(EVENTS)


async def record_group(
    engine: AsyncEngine, batches: Sequence[Batch], *, policy: Policy
) -> list[Recorded | Exception]:
    """Record `batches` (each one room's events, no room twice) in one transaction; one result each.
    A conflict with another worker's writes, or a batch that fails on its own, makes it record them
    one room at a time instead, so that one room's failure is that room's alone (its result is the
    exception). An unavailable database fails them all (their jobs retry)."""
    try:
        async with writing(engine) as connection:
            return list(await _record_group_once(connection, batches, policy))
    except (StaleWrite, IntegrityError):
        pass
    except (OperationalError, DBAPIError, OSError):
        raise
    except Exception:
        if len(batches) == 1:
            raise
    results: list[Recorded | Exception] = []
    for batch in batches:
        try:
            results.append(await record_events(engine, batch, policy=policy))
        except Exception as exc:
            results.append(exc)
    return results


@dataclass
class _Current:
    """A room as the group has folded it so far, and what its row needs."""

    room: Room
    key: tuple[int, int]
    version: int  # 0: the row does not exist yet
    first_seen_at: float
    updated_at: float


async def _record_group_once(
    connection: AsyncConnection, batches: Sequence[Batch], policy: Policy
) -> list[Recorded]:
    results: dict[int, Recorded] = {}
    by_sid: list[tuple[int, Batch]] = []
    for i, batch in enumerate(batches):
        if batch[0][0].room_sid:
            by_sid.append((i, batch))
        else:  # knows only the room's name (a heartbeat): looked up and recorded on its own, first
            results[i] = await record_once(connection, batch, policy)
    rows = [event_row(event, at) for _, batch in by_sid for event, at in batch]
    new_ids = set(await connection.scalars(_INSERT_EVENTS[connection.dialect.name], rows)) if rows else set()
    sids = sorted({batch[0][0].room_sid for _, batch in by_sid})
    current: dict[str, _Current] = {}
    if sids:
        for row in await connection.execute(_SELECT_ROOMS, {"sids": sids}):
            state = room_from_dict(row.state)
            key = (row.last_created_at, row.last_rank)
            current[row.sid] = _Current(state, key, row.version, row.first_seen_at, row.updated_at)
    decided: Decided = []
    touched: dict[str, _Current] = {}
    for i, batch in by_sid:
        sid = batch[0][0].room_sid
        fresh = [(e, at) for e, at in batch if _take(new_ids, e.id)]
        results[i] = await _fold(connection, sid, fresh, current, decided, policy)
        if fresh and sid in current:
            touched[sid] = current[sid]
    new_rooms, changed_rooms = [], []
    for sid, now in touched.items():
        values = room_values(now.room, now.key, now.updated_at)
        if now.version == 0:
            new_rooms.append({**values, "version": 1, "first_seen_at": now.first_seen_at})
        else:
            del values["sid"]
            changed_rooms.append({**values, "b_sid": sid, "version": now.version + 1})
    if new_rooms:
        await connection.execute(_INSERT_ROOMS, new_rooms)
    if changed_rooms:
        await connection.execute(_UPDATE_ROOMS, changed_rooms)
    actions = action_rows(decided)
    if actions:
        await connection.execute(_INSERT_ACTIONS, actions)
    return [results[i] for i in range(len(batches))]


def _take(new_ids: set[str], event_id: str) -> bool:
    """True for the first occurrence of a newly inserted id (a repeat in the same group is a duplicate)."""
    if event_id in new_ids:
        new_ids.discard(event_id)
        return True
    return False


async def _fold(
    connection: AsyncConnection,
    sid: str,
    fresh: list[tuple[Event, float]],
    current: dict[str, _Current],
    decided: Decided,
    policy: Policy,
) -> Recorded:
    """Fold one room's fresh events into `current[sid]` (creating it for a new room), as
    `store.record_once` does; the rows are written by the caller."""
    now = current.get(sid)
    if not fresh:
        return Recorded(Outcome.DUPLICATE, now.room if now is not None else None)
    received_at = fresh[-1][1]
    if now is None:
        folded = await fold_fresh(connection, sid, fresh, policy)
        current[sid] = _Current(folded.room, folded.key, 0, received_at, received_at)
        decided.extend(folded.decided)
        return Recorded(Outcome.APPLIED, folded.room, all_actions(folded.decided))
    before = now.room
    folded = await fold_fresh(connection, sid, fresh, policy, before=before, key=now.key, name=before.name)
    now.room, now.key, now.updated_at = folded.room, folded.key, received_at
    decided.extend(folded.decided)
    return Recorded(folded.outcome, folded.room, all_actions(folded.decided), before)


class GroupCommit:
    """Gathers the batches of concurrent jobs and records them together (see the module's doc).
    `await record(batch)` returns what `store.record_events` would, once its group is committed."""

    def __init__(self, engine: AsyncEngine, policy: Policy, *, max_group: int = MAX_GROUP) -> None:
        self._engine, self._policy, self._max = engine, policy, max_group
        self._waiting: list[tuple[Batch, asyncio.Future[Recorded]]] = []
        self._flusher: asyncio.Task[None] | None = None

    async def record(self, batch: Batch) -> Recorded:
        future: asyncio.Future[Recorded] = asyncio.get_running_loop().create_future()
        self._waiting.append((batch, future))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush())
        return await future

    async def _flush(self) -> None:
        while self._waiting:
            group: list[tuple[Batch, asyncio.Future[Recorded]]] = []
            rest: list[tuple[Batch, asyncio.Future[Recorded]]] = []
            rooms: set[str] = set()
            for batch, future in self._waiting:
                first = batch[0][0]
                room = first.room_sid or f"name:{first.room_name}"
                if future.done():  # its job gave up waiting (timed out): nobody wants the answer
                    continue
                if room in rooms or len(group) >= self._max:
                    rest.append((batch, future))
                    continue
                rooms.add(room)
                group.append((batch, future))
            self._waiting = rest
            if not group:
                continue
            try:
                results = await record_group(self._engine, [batch for batch, _ in group], policy=self._policy)
            except Exception as exc:  # every caller sees the failure (and its job retries)
                for _, future in group:
                    if not future.done():
                        future.set_exception(exc)
                continue
            for (_, future), result in zip(group, results, strict=True):
                if future.done():
                    continue
                if isinstance(result, Exception):
                    future.set_exception(result)
                else:
                    future.set_result(result)

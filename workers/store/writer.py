"""The one writer of rooms: record events and fold them into their rooms, exactly once, many rooms
in one transaction with a handful of statements (`record_in`, for `workers.store.group.record_group`;
a single batch is a group of one).

1. read every room concerned (`SELECT ... WHERE sid IN (...) ORDER BY sid FOR UPDATE`: rows locked
   in one order, so two workers never deadlock; SQLite's BEGIN IMMEDIATE holds its only write lock);
2. insert every event (`INSERT ... ON CONFLICT DO NOTHING RETURNING event_id`, one multi-row
   statement): the ids returned are the events new to Warden, the rest are duplicates (LiveKit's
   retry, ARQ re-running a job) and change nothing. A room's events are inserted under its lock, so
   their `seq` is the order they were applied in;
3. fold the new events into the rooms in memory (`machine.transition`), in the order things happened
   (`order.placed`: LiveKit's second, then arrival; Warden's own events right after what they were
   decided on). A webhook of an earlier second than the newest applied arrived out of order (late):
   the room is folded again from its newest checkpoint before that second (`workers.store.checkpoints`,
   else from its first event), so the state is always the fold of its events in that order;
4. insert the new rooms, update the others, write their expected agents' rows (`workers.store.room_agents`),
   log the decisions, and put the side effects among them in the outbox (`workers.store.outbox`,
   delivered at least once from there): one executemany each. Each room row carries a `version`, and
   the update writes a room only at the version it read; any other version, like a room that another
   worker inserted meanwhile, fails the transaction (`IntegrityError`). The group is then recorded
   again one room at a time, each retried.

The fold (step 3) is `workers.store.folding`; the rows and statements of steps 1, 2 and 4 are
`workers.store.room_rows`. Events and rooms are committed together, so neither exists without the
other. An event whose values the database cannot store (`workers.store.unstorable`: checked before,
or refused by the database) fails alone with `UnstorableEvent`, never retried (a group is recorded
again without it, `record_group`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from sqlalchemy import bindparam, select, update
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from workers.core import stored
from workers.core.errors import StaleWrite
from workers.core.events import Event
from workers.core.room import Policy, Room
from workers.core.rules import Rules
from workers.store import checkpoints, folding, outbox, room_agents, sli_outcomes, unstorable
from workers.store.engine import writing
from workers.store.folding import Current, Outcome, Recorded
from workers.store.log_rows import Decided, action_rows, event_row
from workers.store.models import ROOMS
from workers.store.reads import read_state
from workers.store.room_rows import (
    INSERT_ACTIONS,
    INSERT_EVENTS,
    INSERT_ROOMS,
    SELECT_ROOMS,
    UPDATE_ROOMS,
    UPDATED,
    room_values,
)

__all__ = ["Batch", "Outcome", "Recorded", "as_rules", "confirm", "load_room", "load_room_named"]
__all__ += ["record_event", "record_events", "record_in"]

MAX_ATTEMPTS = 20

# Built once: constructing a statement per call costs more than executing it.
_LOCK_ROOMS = (
    select(ROOMS.c.sid)
    .where(ROOMS.c.sid.in_(bindparam("sids", expanding=True)))
    .order_by(ROOMS.c.sid)
    .with_for_update()
)
_CONFIRM = (
    update(ROOMS)
    .where(ROOMS.c.sid.in_(bindparam("sids", expanding=True)))
    .values(confirmed_at=bindparam("at"))
)
_SID_BY_NAME = (
    select(ROOMS.c.sid)
    .where(ROOMS.c.name == bindparam("name"))
    .order_by(ROOMS.c.first_seen_at.desc())
    .limit(1)
)


Batch = Sequence[tuple[Event, float]]


def as_rules(rules: Rules | Policy) -> Rules:
    """The rules to record under (a bare policy: no rules file, its agent name as `WARDEN_AGENT_NAME`)."""
    return rules if isinstance(rules, Rules) else Rules.of((), rules)


async def record_event(
    engine: AsyncEngine, event: Event, *, received_at: float, rules: Rules | Policy
) -> Recorded:
    """Store `event` and update its room; retry on a concurrent writer. Safe to call twice."""
    return await record_events(engine, [(event, received_at)], rules=rules)


async def record_events(engine: AsyncEngine, batch: Batch, *, rules: Rules | Policy) -> Recorded:
    """Store events of one room, in order, and fold them in: a group of one, retried on a conflict
    with another worker. Used for a question and its answer (a deadline and what LiveKit said).
    `UnstorableEvent` when the database cannot store their values."""
    refusal = unstorable.check(batch)
    if refusal is not None:
        raise refusal
    for _ in range(MAX_ATTEMPTS):
        try:
            async with writing(engine) as connection:
                (recorded,) = await record_in(connection, [batch], as_rules(rules))
                return recorded
        except (OperationalError, OSError):
            raise
        except DBAPIError as exc:
            said = unstorable.refused(exc)
            if said is not None:
                raise unstorable.refusal(batch, said) from None  # not the statement, nor its values
            if not isinstance(exc, IntegrityError):
                raise
    raise StaleWrite(f"room {batch[0][0].room_sid} kept changing under {MAX_ATTEMPTS} attempts")


async def load_room(engine: AsyncEngine, sid: str, *, legacy_agent: str = "") -> Room | None:
    """The room's current state, a part per expected agent, or None if Warden has never heard of it
    (read together with the rooms that concurrent jobs ask for, `workers.store.reads`). `legacy_agent`:
    whom a row written before views existed was watched for, `WARDEN_AGENT_NAME`."""
    state = await read_state(engine, sid)
    return stored.from_dict(state, legacy_agent=legacy_agent) if state is not None else None


async def load_room_named(engine: AsyncEngine, name: str, *, legacy_agent: str = "") -> Room | None:
    """The newest room called `name` (for events that know only the name, such as heartbeats)."""
    async with engine.connect() as connection:
        sid = await _sid_by_name(connection, name)
    return await load_room(engine, sid, legacy_agent=legacy_agent) if sid else None


async def confirm(engine: AsyncEngine, sids: Sequence[str], at: float) -> None:
    """A check found these rooms as Warden knows them: note when (`rooms.confirmed_at`), with no event
    and no new version. Rows are locked in sid order, as every writer locks them."""
    if not sids:
        return
    ordered = sorted(set(sids))
    async with writing(engine) as connection:
        await connection.execute(_LOCK_ROOMS, {"sids": ordered})
        await connection.execute(_CONFIRM, {"sids": ordered, "at": at})


Placed = list[tuple[int, str, Batch]]  # (index in the group, room sid or "" when unknown, batch)


async def record_in(connection: AsyncConnection, batches: Sequence[Batch], rules: Rules) -> list[Recorded]:
    """Record `batches` in the open write transaction, one result each (see the module's doc)."""
    named: Placed = []
    for i, batch in enumerate(batches):
        first = batch[0][0]
        if not first.room_sid:  # knows only its room's name (a heartbeat): the newest room of that name
            sid = await _sid_by_name(connection, first.room_name)
            named.append((i, sid, [(replace(e, room_sid=sid), at) for e, at in batch]))
    found = {sid for _, sid, _ in named}
    by_sid = [(i, b[0][0].room_sid, b) for i, b in enumerate(batches) if b[0][0].room_sid]
    # A room's batches are folded in their order; a room that a heartbeat found, after the heartbeat.
    rounds = [named + [p for p in by_sid if p[1] not in found], [p for p in by_sid if p[1] in found]]
    results: dict[int, Recorded] = {}
    for placed in rounds:
        if placed:
            results.update(await _record_round(connection, placed, rules))
    return [results[i] for i in range(len(batches))]


async def _record_round(connection: AsyncConnection, placed: Placed, rules: Rules) -> dict[int, Recorded]:
    current: dict[str, Current] = {}
    sids = sorted({sid for _, sid, _ in placed if sid})
    if sids:  # locked before the events go in: a room's `seq` is then the order of its events' folding
        for row in await connection.execute(SELECT_ROOMS, {"sids": sids}):
            current[row.sid] = Current(
                stored.from_dict(row.state, legacy_agent=rules.legacy_agent),
                row.last_created_at,
                row.version,
                row.first_seen_at,
                row.updated_at,
            )
    rows = [event_row(event, at) for _, _, batch in placed for event, at in batch]
    seqs = {
        event_id: seq
        for event_id, seq in await connection.execute(INSERT_EVENTS[connection.dialect.name], rows)
    }
    new_ids = set(seqs)
    read = {sid: now.room for sid, now in current.items()}  # as stored: whose agents' rows exist
    results: dict[int, Recorded] = {}
    decided: Decided = []
    touched: set[str] = set()
    for i, sid, batch in placed:
        fresh = [(e, at) for e, at in batch if _take(new_ids, e.id)]
        if not sid:
            results[i] = Recorded(Outcome.NO_ROOM if fresh else Outcome.DUPLICATE)
            continue
        results[i] = await folding.fold(connection, sid, fresh, seqs, current, decided, rules)
        if fresh:
            touched.add(sid)
    new_rooms, changed_rooms = [], []
    for sid in sorted(touched):  # one order for every writer: no deadlock between two inserting workers
        now = current[sid]
        values = room_values(now.room, now.newest, now.updated_at)
        if now.version == 0:
            new_rooms.append({**values, "version": 1, "first_seen_at": now.first_seen_at})
        else:
            changed_rooms.append({**{n: values[n] for n in UPDATED}, "b_sid": sid, "b_version": now.version})
    if new_rooms:
        await connection.execute(INSERT_ROOMS, new_rooms)
    if changed_rooms:
        await connection.execute(UPDATE_ROOMS, changed_rooms)
    saved = [(read.get(sid), current[sid].room) for sid in sorted(touched)]
    await room_agents.write(connection, saved)
    counted = await sli_outcomes.write(connection, saved)  # each outcome once, with its room's state
    for i, sid, _ in placed:
        if sid in counted:
            results[i] = replace(results[i], counted=counted.pop(sid))
    await checkpoints.write(
        connection, {sid: current[sid].checkpoints for sid in touched if current[sid].checkpoints}
    )
    actions = action_rows(decided, observe=rules.observe)
    if actions:
        await connection.execute(INSERT_ACTIONS, actions)
        await outbox.write(connection, outbox.rows(decided))  # delivered at least once from here on
    return results


def _take(new_ids: set[str], event_id: str) -> bool:
    """True for the first occurrence of a newly inserted id (a repeat in the same group is a duplicate)."""
    if event_id in new_ids:
        new_ids.discard(event_id)
        return True
    return False


async def _sid_by_name(connection: AsyncConnection, name: str) -> str:
    """The newest room of that name (for events that know only the name, such as heartbeats)."""
    if not name:
        return ""
    found = await connection.scalar(_SID_BY_NAME, {"name": name})
    return str(found) if found else ""

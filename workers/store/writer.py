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

Events and rooms are committed together, so neither exists without the other. An event whose values the
database cannot store (`workers.store.unstorable`: checked before, or refused by the database) fails
alone with `UnstorableEvent`, never retried (a group is recorded again without it, `record_group`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

from sqlalchemy import bindparam, case, insert, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from workers.core import machine, order, sli, stored
from workers.core.actions import new_actions
from workers.core.errors import StaleWrite
from workers.core.events import Event
from workers.core.plain import from_plain
from workers.core.renumber import renumbered
from workers.core.room import Action, Policy, Room, time_to_agent
from workers.core.rules import Rules
from workers.store import checkpoints, outbox, room_agents, sli_outcomes, unstorable
from workers.store.engine import writing
from workers.store.log_rows import ACTION_KIND, Decided, action_rows, event_row
from workers.store.models import EVENTS, ROOMS
from workers.store.outbox import Pending
from workers.store.reads import read_state

MAX_ATTEMPTS = 20


Batch = Sequence[tuple[Event, float]]


class Outcome(StrEnum):
    APPLIED = "applied"
    REFOLDED = "refolded"
    DUPLICATE = "duplicate"
    NO_ROOM = "no_room"


@dataclass(frozen=True)
class Recorded:
    """What recording did: the outcome, the room as it now stands (with a part per expected agent),
    and the actions newly decided."""

    outcome: Outcome
    room: Room | None = None
    actions: tuple[Action, ...] = ()
    before: Room | None = None  # the room before this recording (None: new to Warden)
    notices: tuple[Pending, ...] = ()  # the actions among `actions` written to the outbox, with their ids
    counted: tuple[sli.Outcome, ...] = ()  # service levels' outcomes this recording wrote first (to count)


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
        await connection.execute(
            select(ROOMS.c.sid).where(ROOMS.c.sid.in_(ordered)).order_by(ROOMS.c.sid).with_for_update()
        )
        await connection.execute(update(ROOMS).where(ROOMS.c.sid.in_(ordered)).values(confirmed_at=at))


def room_values(room: Room, newest: int, received_at: float) -> dict[str, Any]:
    """The room row's columns for `room`, whose newest webhook applied is of second `newest` (all but the
    `version` and `first_seen_at` that only the writer knows): the phase and recovery of its agent most
    in need, its next deadline, and the time to its first expected agent."""
    shown = room.summary()
    waits = [t for t in (time_to_agent(room, v) for v in room.views) if t is not None]
    return {
        "sid": room.sid,
        "name": room.name,
        "phase": room.state(),
        "state": stored.to_dict(room),
        "last_created_at": newest,
        "last_rank": 0,  # was the newest event's rank within its second, before issue 24
        "updated_at": received_at,
        "deadline_at": room.next_deadline(),
        "recovery": str(shown.recovery),
        "time_to_agent": min(waits, default=None),
    }


def _insert_events(insert_for: Any) -> Any:
    statement = insert_for(EVENTS).on_conflict_do_nothing(index_elements=["event_id"])
    return statement.returning(EVENTS.c.event_id, EVENTS.c.seq)


# Built once: constructing a statement per call costs more than executing it.
_INSERT_EVENTS = {"postgresql": _insert_events(postgresql_insert), "sqlite": _insert_events(sqlite_insert)}
_SELECT_ROOMS = (
    select(ROOMS)
    .where(ROOMS.c.sid.in_(bindparam("sids", expanding=True)))
    .order_by(ROOMS.c.sid)
    .with_for_update()
)
_INSERT_ROOMS = insert(ROOMS)
_UPDATED = tuple(c.name for c in ROOMS.c if c.name not in ("sid", "version", "first_seen_at", "confirmed_at"))
# The version check: a row not at the version read gets a NULL version, which the NOT NULL column
# refuses, failing the transaction. (`WHERE version = ...` would skip the row silently instead, and
# asyncpg reports no row count for an executemany.)
_UPDATE_ROOMS = (
    update(ROOMS)
    .where(ROOMS.c.sid == bindparam("b_sid"))
    .values(
        {
            **{name: bindparam(name) for name in _UPDATED},
            "version": case((ROOMS.c.version == bindparam("b_version"), ROOMS.c.version + 1)),
        }
    )
)
_INSERT_ACTIONS = insert(EVENTS)

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


@dataclass
class _Current:
    """A room as the group has folded it so far, and what its row needs."""

    room: Room
    newest: int  # the newest webhook second applied (`order.placed`)
    version: int  # 0: the row does not exist yet
    first_seen_at: float
    updated_at: float
    checkpoints: checkpoints.Pending = field(default_factory=checkpoints.Pending)


async def _record_round(connection: AsyncConnection, placed: Placed, rules: Rules) -> dict[int, Recorded]:
    current: dict[str, _Current] = {}
    sids = sorted({sid for _, sid, _ in placed if sid})
    if sids:  # locked before the events go in: a room's `seq` is then the order of its events' folding
        for row in await connection.execute(_SELECT_ROOMS, {"sids": sids}):
            current[row.sid] = _Current(
                stored.from_dict(row.state, legacy_agent=rules.legacy_agent),
                row.last_created_at,
                row.version,
                row.first_seen_at,
                row.updated_at,
            )
    rows = [event_row(event, at) for _, _, batch in placed for event, at in batch]
    seqs = {
        event_id: seq
        for event_id, seq in await connection.execute(_INSERT_EVENTS[connection.dialect.name], rows)
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
        results[i] = await _fold(connection, sid, fresh, seqs, current, decided, rules)
        if fresh:
            touched.add(sid)
    new_rooms, changed_rooms = [], []
    for sid in sorted(touched):  # one order for every writer: no deadlock between two inserting workers
        now = current[sid]
        values = room_values(now.room, now.newest, now.updated_at)
        if now.version == 0:
            new_rooms.append({**values, "version": 1, "first_seen_at": now.first_seen_at})
        else:
            changed_rooms.append({**{n: values[n] for n in _UPDATED}, "b_sid": sid, "b_version": now.version})
    if new_rooms:
        await connection.execute(_INSERT_ROOMS, new_rooms)
    if changed_rooms:
        await connection.execute(_UPDATE_ROOMS, changed_rooms)
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
        await connection.execute(_INSERT_ACTIONS, actions)
        await outbox.write(connection, outbox.rows(decided))  # delivered at least once from here on
    return results


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
    seqs: dict[str, int],
    current: dict[str, _Current],
    decided: Decided,
    rules: Rules,
) -> Recorded:
    """Fold one room's events new to Warden (already inserted) into `current[sid]`, creating it for a
    room new to Warden, and add the decisions to `decided`; the rows are written by the caller."""
    now = current.get(sid)
    if not fresh:
        return Recorded(Outcome.DUPLICATE, now.room if now is not None else None)
    last_event, received_at = fresh[-1]
    mine: Decided = []
    if now is None:
        room, newest = Room(sid, last_event.room_name), -1
        for event, at in order.placed(fresh):
            decision = machine.transition(room, event, now=at, rules=rules)
            room, newest = decision.room, order.newest_after(newest, event)
            mine.append((event, at, decision.actions))
        current[sid] = _Current(room, newest, 0, received_at, received_at)
        decided.extend(mine)
        return Recorded(Outcome.APPLIED, room, all_actions(mine), notices=_notices(mine))
    before, room, newest, outcome = now.room, now.room, now.newest, Outcome.APPLIED
    for event, at in fresh:
        if not order.is_webhook(event) or event.created_at >= newest:  # in order (`order.placed`)
            if order.is_webhook(event) and checkpoints.opens_window(newest, event.created_at):
                now.checkpoints.keep(checkpoints.Checkpoint(event.created_at, seqs[event.id], newest, room))
            decision = machine.transition(room, event, now=at, rules=rules)
            room, newest = decision.room, order.newest_after(newest, event)
            mine.append((event, at, decision.actions))
        else:  # late: fold again from a checkpoint before it, this batch included (it is inserted already)
            until = max(seqs[e.id] for e, _ in fresh)  # not the room's later batches of this group
            folded, newest = await _refold(connection, sid, event.created_at, until, now, rules)
            room = renumbered(before, folded)
            refolded = new_actions(before, room)
            outcome, mine = Outcome.REFOLDED, [(last_event, received_at, refolded)]
            break
    if not room.name and last_event.room_name:
        room = replace(room, name=last_event.room_name)
    now.room, now.newest, now.updated_at = room, newest, received_at
    decided.extend(mine)
    return Recorded(outcome, room, all_actions(mine), before, _notices(mine))


async def _refold(
    connection: AsyncConnection, sid: str, second: int, until: int, now: _Current, rules: Rules
) -> tuple[Room, int]:
    """The room folded again for a late webhook of `second`: from the newest checkpoint at or before it
    (else from the first event), over the events since up to log `seq` `until` (the group inserted the
    room's later batches too: they are folded on top afterwards), in the order they apply; and the
    newest second."""
    start = await checkpoints.before(
        connection, sid, second, now.checkpoints, legacy_agent=rules.legacy_agent
    )
    room, newest, since = Room(sid, now.room.name), -1, 0
    if start is not None:
        room, newest, since = start.room, start.newest, start.seq
    log = await room_events(connection, sid, since=since, until=until)
    folded = machine.fold(room, log, rules=rules, newest=newest)
    for event, _ in log:
        newest = order.newest_after(newest, event)
    return folded, newest


def all_actions(decided: Decided) -> tuple[Action, ...]:
    return tuple(action for _, _, actions in decided for action in actions)


def _notices(decided: Decided) -> tuple[Pending, ...]:
    return tuple(
        Pending(outbox.notice_id(event, i), event.room_sid, action)  # type: ignore[arg-type]
        for event, _, actions in decided
        for i, action in enumerate(actions)
        if outbox.is_notice(action)
    )


async def _sid_by_name(connection: AsyncConnection, name: str) -> str:
    """The newest room of that name (for events that know only the name, such as heartbeats)."""
    if not name:
        return ""
    found = await connection.scalar(
        select(ROOMS.c.sid).where(ROOMS.c.name == name).order_by(ROOMS.c.first_seen_at.desc()).limit(1)
    )
    return str(found) if found else ""


async def room_events(
    connection: AsyncConnection, room_sid: str, *, since: int = 0, until: int | None = None
) -> list[tuple[Event, float]]:
    """The room's events in the order they were recorded (from log `seq` `since` on, up to `until`)."""
    query = select(EVENTS.c.data, EVENTS.c.received_at).where(
        EVENTS.c.room_sid == room_sid, EVENTS.c.kind != ACTION_KIND, EVENTS.c.seq >= since
    )
    if until is not None:
        query = query.where(EVENTS.c.seq <= until)
    rows = await connection.execute(query.order_by(EVENTS.c.seq))
    return [(from_plain(Event, data), received_at) for data, received_at in rows]

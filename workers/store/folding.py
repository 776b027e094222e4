"""Folding a group's events into its rooms, in memory, for the room writer (`workers.store.writer`, whose
doc says in what order), and what recording a batch did (`Recorded`). A late webhook folds its room
again from a checkpoint before it (`workers.store.checkpoints`), reading the room's log since.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from enum import StrEnum

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from workers.core import machine, order, sli
from workers.core.actions import new_actions
from workers.core.events import Event
from workers.core.plain import from_plain
from workers.core.renumber import renumbered
from workers.core.room import Action, Room
from workers.core.rules import Rules
from workers.store import checkpoints, outbox
from workers.store.log_rows import ACTION_KIND, Decided
from workers.store.models import EVENTS
from workers.store.outbox import Pending


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


@dataclass
class Current:
    """A room as the group has folded it so far, and what its row needs."""

    room: Room
    newest: int  # the newest webhook second applied (`order.placed`)
    version: int  # 0: the row does not exist yet
    first_seen_at: float
    updated_at: float
    checkpoints: checkpoints.Pending = field(default_factory=checkpoints.Pending)


async def fold(
    connection: AsyncConnection,
    sid: str,
    fresh: list[tuple[Event, float]],
    seqs: dict[str, int],
    current: dict[str, Current],
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
        current[sid] = Current(room, newest, 0, received_at, received_at)
        decided.extend(mine)
        return Recorded(Outcome.APPLIED, room, all_actions(mine), notices=notices(mine))
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
    return Recorded(outcome, room, all_actions(mine), before, notices(mine))


async def _refold(
    connection: AsyncConnection, sid: str, second: int, until: int, now: Current, rules: Rules
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


def notices(decided: Decided) -> tuple[Pending, ...]:
    return tuple(
        Pending(outbox.notice_id(event, i), event.room_sid, action)  # type: ignore[arg-type]
        for event, _, actions in decided
        for i, action in enumerate(actions)
        if outbox.is_notice(action)
    )


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

"""Checkpoints of a room's state, so that a late webhook is folded in from a place near it instead of from
the room's first event (`workers.store.writer`).

A checkpoint is the room as it stood before the first webhook of a `WINDOW`-second window of LiveKit's
seconds (windows aligned on multiples of `WINDOW`): its state, that webhook's second and `seq`, and the
newest second applied before it. Every event of the room with a smaller `seq` is in it, every later one
is not, and every later one applies at that second or after (`order.placed`). A room keeps two, one
per window parity (`slot`), written only when a webhook opens a new window, so a write costs nothing
most of the time and reads none.

A late webhook of second `s` is folded from the newest checkpoint at or before `s`: its state, then the
room's events from its `seq` on, in the order they apply. The checkpoints after `s` no longer hold (the
late event belongs before them) and are dropped. With two windows of `WINDOW` = 30 s, anything up to
30 s late (LiveKit drops what waited longer, and its retries span 15 s) finds one, and costs the events
since the start of the window before; older than every checkpoint (or a room stored before issue 24),
the room is folded from its first event, as before.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from workers.core import stored
from workers.core.room import Room
from workers.store.models import ROOM_CHECKPOINTS

WINDOW = 30  # seconds of LiveKit's clock a checkpoint covers


@dataclass(frozen=True)
class Checkpoint:
    """The room before the webhook of second `second` (log `seq`), after webhooks up to `newest`."""

    second: int
    seq: int
    newest: int
    room: Room


def slot(second: int) -> int:
    """Which of the room's two checkpoints a window's is."""
    return (second // WINDOW) % 2


def opens_window(newest: int, second: int) -> bool:
    """Does a webhook of `second`, after webhooks up to `newest`, open a new window?"""
    return newest >= 0 and second // WINDOW > newest // WINDOW


@dataclass
class Pending:
    """One room's checkpoints as this transaction leaves them: written (`put`) or dropped, by slot."""

    put: dict[int, Checkpoint] = field(default_factory=dict)
    dropped: set[int] = field(default_factory=set)

    def __bool__(self) -> bool:
        return bool(self.put or self.dropped)

    def keep(self, checkpoint: Checkpoint) -> None:
        self.put[slot(checkpoint.second)] = checkpoint
        self.dropped.discard(slot(checkpoint.second))


async def before(
    connection: AsyncConnection, sid: str, second: int, pending: Pending, *, legacy_agent: str
) -> Checkpoint | None:
    """The newest of the room's checkpoints at or before `second` (None: none is), stored or pending in
    this transaction; the ones after `second` are dropped in `pending`."""
    rows = await connection.execute(select(ROOM_CHECKPOINTS).where(ROOM_CHECKPOINTS.c.room_sid == sid))
    found = {
        row.slot: Checkpoint(
            row.second, row.seq, row.newest, stored.from_dict(row.state, legacy_agent=legacy_agent)
        )
        for row in rows
        if row.slot not in pending.dropped
    }
    found.update(pending.put)
    for key, checkpoint in list(found.items()):
        if checkpoint.second > second:
            pending.put.pop(key, None)
            pending.dropped.add(key)
            del found[key]
    return max(found.values(), key=lambda c: c.seq, default=None)


def _upsert(insert_for: Any) -> Any:
    statement = insert_for(ROOM_CHECKPOINTS)
    return statement.on_conflict_do_update(
        index_elements=["room_sid", "slot"],
        set_={c: statement.excluded[c] for c in ("second", "seq", "newest", "state")},
    )


_UPSERT = {"postgresql": _upsert(postgresql_insert), "sqlite": _upsert(sqlite_insert)}


async def write(connection: AsyncConnection, pending: dict[str, Pending]) -> None:
    """Write what this transaction did to the rooms' checkpoints (rooms in sid order, as rows are locked)."""
    rows = [
        {
            "room_sid": sid,
            "slot": key,
            "second": c.second,
            "seq": c.seq,
            "newest": c.newest,
            "state": stored.to_dict(c.room),
        }
        for sid in sorted(pending)
        for key, c in sorted(pending[sid].put.items())
    ]
    for sid in sorted(pending):
        if pending[sid].dropped:
            await connection.execute(
                delete(ROOM_CHECKPOINTS).where(
                    ROOM_CHECKPOINTS.c.room_sid == sid,
                    ROOM_CHECKPOINTS.c.slot.in_(sorted(pending[sid].dropped)),
                )
            )
    if rows:
        await connection.execute(_UPSERT[connection.dialect.name], rows)

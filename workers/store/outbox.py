"""The outbox: side effects the machine decided, kept until delivered.

A notice (a deadline to queue, a first dispatch, a failed room, a breach or a recovery to report) is
written by the room writer in the same transaction as the room state that decided it, with the id of
the deciding event and the action's place in its decision (`{event_id}#{i}`, as in the room's log).
The job that recorded it delivers it at once and deletes it; whatever a crash, a Redis blink or a
LiveKit failure leaves behind is found by the sweep (`due`) once it is `GRACE_SECONDS` old, leased
to one deliverer at a time, and delivered again. Every receiver is idempotent (deterministic job ids,
ListDispatch before CreateDispatch, claimed incident steps), so a second delivery is harmless.

Calls to the world outside LiveKit (`workers.core.outgoing`: alerts, deploy hooks) are rows too, with no
room: written by the incident step that decides them (`outgoing_row`), held at once by their writer for
a first try (`lease_until`), then delivered by the sweep like the rest until they land or are given up.

A row's `kind` column names what it carries: the class name of its notice or call, as every version has
written it (or a name the class had before, `workers.core.plain.names`). `KINDS` reads the payload as
that class (`workers.core.plain.from_plain`); the deliverer then picks the route by that type.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, get_args

from sqlalchemy import bindparam, delete, or_, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from workers.core.errors import UnreadableRecord
from workers.core.events import Event
from workers.core.outgoing import Alert, IncidentEvent, Outgoing, outgoing_to_dict
from workers.core.plain import from_plain, names
from workers.core.protecting import Protecting
from workers.core.room import (
    Action,
    Dispatch,
    ReportBreach,
    ReportFailed,
    ReportRecovered,
    ScheduleDeadline,
    action_to_dict,
)
from workers.store.engine import writing
from workers.store.models import EVENTS, OUTBOX

log = logging.getLogger("warden.outbox")

GRACE_SECONDS = 5.0  # the recording job delivers first; the sweep takes what is older than this
LEASE_SECONDS = 60.0  # a deliverer that died frees its rows after this long
MAX_BACKOFF_SECONDS = 60.0

Notice = ScheduleDeadline | Dispatch | ReportFailed | ReportBreach | ReportRecovered | Protecting
NOTICES: tuple[type[Notice], ...] = get_args(Notice)
# A row's `kind` → the class its payload is read as: every notice and every outgoing call, by name.
KINDS: dict[str, type[Notice | Outgoing]] = {
    name: cls for cls in (*NOTICES, *get_args(Outgoing)) for name in names(cls)
}


@dataclass(frozen=True)
class Pending:
    """An outbox row handed to a deliverer: its id, its room ("" for an outgoing call, which has none),
    the decided action, how often it was handed out (this time included) and when it was decided."""

    id: str
    room_sid: str
    action: Notice | Outgoing
    attempts: int = 0
    created_at: float = 0.0

    @property
    def action_name(self) -> str:
        return type(self.action).__name__

    @property
    def outgoing(self) -> bool:
        """A call to the world outside LiveKit (an alert, a deploy hook), not a room's notice."""
        return not isinstance(self.action, NOTICES)


def notice_id(event: Event, index: int) -> str:
    """The outbox id of the `index`-th action decided by `event` (the id of its row in the room's log)."""
    return f"{event.id}#{index}"


def is_notice(action: Action) -> bool:
    return isinstance(action, NOTICES)


def payload(kind: str, data: dict[str, Any]) -> Notice | Outgoing:
    """What a row of `kind` carries; `UnreadableRecord` if it is none of `KINDS` or not that class."""
    cls = KINDS.get(kind)
    if cls is None:
        raise UnreadableRecord(f"outbox kind {kind!r} is none of {', '.join(KINDS)}")
    return from_plain(cls, data)


def rows(decided: Iterable[tuple[Event, float, Sequence[Action]]]) -> list[dict[str, Any]]:
    """The outbox rows of the notices among `decided` (event, when, the actions it decided)."""
    return [
        {
            "id": notice_id(event, i),
            "room_sid": event.room_sid,
            "kind": type(action).__name__,
            "payload": action_to_dict(action),
            "created_at": at,
            "due_at": at,
            "attempts": 0,
        }
        for event, at, actions in decided
        for i, action in enumerate(actions)
        if is_notice(action)
    ]


def outgoing_row(call: Outgoing, now: float, *, held_for: float) -> dict[str, Any]:
    """The outbox row of an outgoing call decided now, held by its writer for `held_for` seconds (its
    first try, at once); counted as one attempt."""
    return {
        "id": call.id,
        "room_sid": None,
        "kind": type(call).__name__,
        "payload": outgoing_to_dict(call),
        "created_at": now,
        "due_at": now,
        "attempts": 1,
        "lease_until": now + held_for,
    }


def held(row: dict[str, Any]) -> Pending:
    """The `Pending` of an `outgoing_row` its writer holds."""
    return Pending(row["id"], "", payload(row["kind"], row["payload"]), row["attempts"], row["created_at"])


def _insert(insert_for: Any) -> Any:
    return insert_for(OUTBOX).on_conflict_do_nothing(index_elements=["id"])


_INSERT = {"postgresql": _insert(postgresql_insert), "sqlite": _insert(sqlite_insert)}
_DELETE = delete(OUTBOX).where(OUTBOX.c.id.in_(bindparam("ids", expanding=True)))


async def write(connection: AsyncConnection, outbox_rows: list[dict[str, Any]]) -> None:
    """Add rows in the caller's transaction; a row already there (a decision recorded twice) stays."""
    if outbox_rows:
        await connection.execute(_INSERT[connection.dialect.name], outbox_rows)


async def hold(engine: AsyncEngine, row: dict[str, Any]) -> Pending | None:
    """Write an `outgoing_row` on its own, unless a row of that id is there already: its `Pending`,
    held by the caller for a first try, or None (someone else decided it first)."""
    async with writing(engine) as connection:
        added = await connection.execute(_INSERT[connection.dialect.name].values(row).returning(OUTBOX.c.id))
        if added.first() is None:
            return None
    return held(row)


async def waiting(engine: AsyncEngine, row_id: str) -> bool:
    """Whether the row `row_id` is still to be delivered."""
    async with engine.connect() as connection:
        return await connection.scalar(select(OUTBOX.c.id).where(OUTBOX.c.id == row_id)) is not None


async def done(engine: AsyncEngine, ids: Sequence[str]) -> None:
    """Delivered: forget these rows."""
    if ids:
        async with writing(engine) as connection:
            await connection.execute(_DELETE, {"ids": list(ids)})


async def due(
    engine: AsyncEngine, now: float, *, limit: int = 500, lease: float = LEASE_SECONDS
) -> list[Pending]:
    """Lease the rows older than the grace that nobody holds (or whose holder's lease ran out) to the
    caller for `lease` seconds; oldest first."""
    free = or_(OUTBOX.c.lease_until.is_(None), OUTBOX.c.lease_until < now)
    async with engine.connect() as connection:
        candidates = list(
            await connection.scalars(
                select(OUTBOX.c.id)
                .where(OUTBOX.c.due_at <= now - GRACE_SECONDS, free)
                .order_by(OUTBOX.c.due_at)
                .limit(limit)
            )
        )
    if not candidates:
        return []
    async with writing(engine) as connection:
        leased = await connection.execute(
            update(OUTBOX)
            .where(OUTBOX.c.id.in_(candidates), free)
            .values(lease_until=now + lease, attempts=OUTBOX.c.attempts + 1)
            .returning(
                OUTBOX.c.id,
                OUTBOX.c.room_sid,
                OUTBOX.c.kind,
                OUTBOX.c.payload,
                OUTBOX.c.attempts,
                OUTBOX.c.created_at,
            )
        )
        taken = list(leased)
    order = {row_id: i for i, row_id in enumerate(candidates)}
    readable = []
    for row in taken:
        try:
            action = payload(row.kind, row.payload)
        except UnreadableRecord as exc:  # one bad row must not stop the others
            log.error("outbox row %s cannot be read (%s); left as it is", row.id, exc)
            continue
        readable.append(Pending(row.id, row.room_sid or "", action, row.attempts, row.created_at))
    return sorted(readable, key=lambda pending: order[pending.id])


async def failed(engine: AsyncEngine, pending: Pending, now: float, error: str) -> None:
    """Not delivered this time: try again after a backoff that grows with the attempts (at most a
    minute), noting why."""
    retry_at = now + min(MAX_BACKOFF_SECONDS, 2.0 ** max(0, pending.attempts - 1))
    async with writing(engine) as connection:
        await connection.execute(
            update(OUTBOX)
            .where(OUTBOX.c.id == pending.id)
            .values(lease_until=retry_at, last_error=error[:512])
        )


async def not_carried_out(engine: AsyncEngine, ids: Sequence[str]) -> set[str]:
    """Of the notices `ids`, those the room's log records as decided and not carried out (observe mode's,
    `workers.core.observing`; a notice's id is its decision's in the log): no order for act mode."""
    if not ids:
        return set()
    async with engine.connect() as connection:
        rows = await connection.execute(
            select(EVENTS.c.event_id, EVENTS.c.data).where(EVENTS.c.event_id.in_(list(ids)))
        )
        return {str(i) for i, data in rows if isinstance(data, dict) and data.get("carried_out") is False}


WITHHELD = "decided in act mode; not carried out: Warden now observes"


async def withheld(engine: AsyncEngine, ids: Sequence[str]) -> None:
    """The notices `ids`, decided in act mode and delivered in observe mode, whose gate made nothing
    (`workers.core.observing`): their decisions' lines in the room's log say so, `carried_out` false
    and why (`withheld`), so that the timeline says what happened. Observe mode's own stay as they are."""
    if not ids:
        return
    async with writing(engine) as connection:
        rows = await connection.execute(
            select(EVENTS.c.event_id, EVENTS.c.data).where(EVENTS.c.event_id.in_(list(ids)))
        )
        for event_id, data in list(rows):
            if isinstance(data, dict) and data.get("carried_out") is not False:
                changed = {**data, "carried_out": False, "withheld": WITHHELD}
                await connection.execute(
                    update(EVENTS).where(EVENTS.c.event_id == event_id).values(data=changed)
                )


async def withdraw_calls(engine: AsyncEngine, incident_id: str, now: float) -> list[tuple[Outgoing, bool]]:
    """Delete the alerts and incident events of incident `incident_id` still in the outbox; each with
    whether it may be landing now: held for its first try by the worker that decided it (its lease
    running, no attempt failed yet). One that failed waits for its next try: not landed."""
    calls = select(
        OUTBOX.c.id, OUTBOX.c.kind, OUTBOX.c.payload, OUTBOX.c.lease_until, OUTBOX.c.last_error
    ).where(OUTBOX.c.room_sid.is_(None), OUTBOX.c.kind.in_(_ALERTS))
    withdrawn: list[tuple[Outgoing, bool]] = []
    async with writing(engine) as connection:
        for row in list(await connection.execute(calls)):
            try:
                call = payload(row.kind, row.payload)
            except UnreadableRecord:
                continue
            if isinstance(call, Alert | IncidentEvent) and call.incident_id == incident_id:
                await connection.execute(_DELETE, {"ids": [row.id]})
                trying = row.last_error is None and row.lease_until is not None and row.lease_until > now
                withdrawn.append((call, trying))
    return withdrawn


_ALERTS = (*names(Alert), *names(IncidentEvent))  # the kinds of alert rows, as every version wrote them

"""Events the database cannot store, told apart from a database that cannot store anything.

A value too long for its column, a NUL in text or a constraint it breaks is the event's fault: no
retry fixes it, and the events recorded in the same transaction must not fail with it. An unreachable
or failing database is nobody's event's fault: every job waiting on it retries. The writer and the
group commit (`workers.store.writer`, `workers.store.group`) ask here which one they met:

- `check(batch)` before writing: the values of each event against the widths of the columns that hold
  them, and NULs, the same on SQLite (which would store any length, and a NUL) and PostgreSQL (which
  refuses both). The web bounds these values before they are queued (`workers.core.bounds`); this
  catches the rest: jobs queued by an older version, events Warden makes from what it was sent.
- `refused(exc)` after the database refused a statement: PostgreSQL's data exceptions (SQLSTATE class
  22: a value too long, a NUL; asyncpg's reach SQLAlchemy as a bare `DBAPIError`, not `DataError`) and
  integrity violations (class 23; SQLite's `IntegrityError`), except the two by which another writer
  beat this one to a room (`rooms.version` set NULL by the version check, or the room's primary key:
  retried, see the writer's doc). A duplicate event never gets here: its insert does nothing.

Anything else (`OperationalError`, a connection refused, an `OSError`) stays an outage and is retried.
Reasons name the event and the column, never the value (an identity can be a phone number).
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.exc import DataError, DBAPIError, IntegrityError

from workers.core import bounds
from workers.core.errors import UnstorableEvent
from workers.core.events import Event
from workers.core.personal import mask_phone
from workers.store.models import EVENTS, ROOM_AGENTS, ROOMS

MAX_REASON = 300  # characters of the database's own message kept in the reason


def width(column: object) -> int:
    """The width of a text column of bounded width (`VARCHAR(n)`; SQLModel's `AutoString` holds it too)."""
    length = getattr(getattr(column, "type", None), "length", None)
    if not isinstance(length, int):
        raise TypeError(f"{column} is no text column of bounded width")
    return length


# What each event writes into a text column of bounded width (the room's name goes into its row).
_WIDTHS = {
    "events.event_id": width(EVENTS.c.event_id),
    "events.room_sid": width(EVENTS.c.room_sid),
    "events.name": width(EVENTS.c.name),
    "events.participant_identity": width(EVENTS.c.participant_identity),
    "rooms.name": width(ROOMS.c.name),
    "agent name": width(ROOM_AGENTS.c.agent),  # an agent a room learns gets a row of its own
}


def check(batch: Sequence[tuple[Event, float]]) -> UnstorableEvent | None:
    """The refusal of the first event of `batch` that no database may store as it is, or None."""
    for event, _ in batch:
        person = event.participant
        values = {
            "events.event_id": event.id,
            "events.room_sid": event.room_sid,
            "events.name": event.name,
            "events.participant_identity": person.identity if person is not None else "",
            "rooms.name": event.room_name,
            "agent name": person.agent_name if person is not None else "",
        }
        for column, value in values.items():
            problem = bounds.problem(value, _WIDTHS[column])
            if problem is not None:
                return UnstorableEvent(f"event {_named(event)} not stored: its {column} is {problem}")
    return None


def refused(exc: DBAPIError) -> str | None:
    """What the database said when refusing values that are at fault (see the module's doc), without
    the values; None when `exc` is no such refusal."""
    original = exc.orig
    state = getattr(original, "sqlstate", None)  # asyncpg's SQLSTATE; SQLite's errors have none
    if isinstance(state, str):
        cause = getattr(original, "__cause__", None)
        column, constraint = getattr(cause, "column_name", None), getattr(cause, "constraint_name", None)
        conflict = getattr(cause, "table_name", None) == ROOMS.name and (
            column == "version" or constraint == f"{ROOMS.name}_pkey"
        )
        theirs = state.startswith("22") or (state.startswith("23") and not conflict)
    else:
        message = str(original)
        conflict = "rooms.version" in message or "rooms.sid" in message
        theirs = isinstance(exc, DataError) or (isinstance(exc, IntegrityError) and not conflict)
    if not theirs:
        return None
    return mask_phone(str(original).strip().split("\n", 1)[0])[:MAX_REASON]


def refusal(batch: Sequence[tuple[Event, float]], said: str) -> UnstorableEvent:
    """The error of a batch whose values the database refused, saying `said` (from `refused`)."""
    events = ", ".join(_named(event) for event, _ in batch)
    return UnstorableEvent(f"event {events} not stored: the database refused it ({said})")


def _named(event: Event) -> str:
    """An event as a reason names it: its id (bounded: an old job's may not be), and its kind."""
    return f"{bounds.clip(event.id, 80)} ({bounds.clip(event.name, 40)})"

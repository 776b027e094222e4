"""Dead letters: jobs that kept failing for a reason no retry fixes (a bug, a malformed event), kept
with what they were given and why they failed, until an operator re-runs them (`warden retry ID`).

A row's id is the failed job's id; a re-run that fails again comes back to the same row (its attempts
added up, `retried_at` and `retried_by` cleared), so a job is one row however often it is re-run.

Every value is kept within its column, and a string among the arguments within `MAX_ARG_CHARS`, clipped
with a marker (`workers.core.bounds.clip`): today's jobs carry bounded values, but one queued by an
older version may hold a megabyte-long identity that the store refused, and its dead letter must
neither be refused in turn nor serve megabytes to the dashboard and the API. Such a job fails the
same way when re-run."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncEngine

from workers.core import bounds
from workers.core.plain import strings_mapped
from workers.store.engine import dialect_insert, writing
from workers.store.models import DEAD_LETTERS
from workers.store.unstorable import width

MAX_ERROR = 2048  # the column's width
MAX_ARG_CHARS = 4096


@dataclass(frozen=True)
class DeadLetter:
    """A failed job: its id, function and arguments (JSON), its room when known, the error (type and
    message), how often it was tried, when it last failed, and when it was last re-run and by whom (the
    name of the operator's token)."""

    id: str
    function: str
    args: list[Any]
    room_sid: str | None
    room_name: str | None
    error: str
    attempts: int
    failed_at: float
    retried_at: float | None = None
    retried_by: str | None = None


def _letter(row: Row[Any]) -> DeadLetter:
    return DeadLetter(
        row.id,
        row.function,
        list(row.args),
        row.room_sid,
        row.room_name,
        row.error,
        row.attempts,
        row.failed_at,
        row.retried_at,
        row.retried_by,
    )


async def keep(engine: AsyncEngine, letter: DeadLetter) -> None:
    """Keep a failed job; one kept before under the same id (a re-run failing again) is updated."""
    values = {
        **asdict(letter),
        **{
            column: bounds.clip(value, width(DEAD_LETTERS.c[column])) if value else None
            for column, value in (
                ("id", letter.id),
                ("function", letter.function),
                ("room_sid", letter.room_sid),
                ("room_name", letter.room_name),
            )
        },
        "args": _clipped(letter.args),
        "error": bounds.clip(letter.error, MAX_ERROR),
        "retried_at": None,
        "retried_by": None,
    }
    async with writing(engine) as connection:
        insert = dialect_insert(connection, DEAD_LETTERS).values(values)
        await connection.execute(
            insert.on_conflict_do_update(
                index_elements=["id"],
                set_={
                    "function": insert.excluded.function,
                    "args": insert.excluded.args,
                    "room_sid": insert.excluded.room_sid,
                    "room_name": insert.excluded.room_name,
                    "error": insert.excluded.error,
                    "attempts": DEAD_LETTERS.c.attempts + insert.excluded.attempts,
                    "failed_at": insert.excluded.failed_at,
                    "retried_at": None,
                    "retried_by": None,
                },
            )
        )


def _clipped(value: Any) -> Any:
    """JSON `value` with every string longer than `MAX_ARG_CHARS` clipped (see the module's doc)."""
    return strings_mapped(value, lambda text: bounds.clip(text, MAX_ARG_CHARS))


async def newest(engine: AsyncEngine, *, limit: int = 100) -> list[DeadLetter]:
    """The dead letters, newest failure first."""
    async with engine.connect() as connection:
        rows = await connection.execute(
            select(DEAD_LETTERS).order_by(DEAD_LETTERS.c.failed_at.desc(), DEAD_LETTERS.c.id).limit(limit)
        )
        return [_letter(row) for row in rows]


async def find(engine: AsyncEngine, letter_id: str) -> DeadLetter | None:
    async with engine.connect() as connection:
        row = (await connection.execute(select(DEAD_LETTERS).where(DEAD_LETTERS.c.id == letter_id))).first()
        return None if row is None else _letter(row)


async def claim_retry(engine: AsyncEngine, letter_id: str, now: float, by: str) -> DeadLetter | None:
    """Mark a dead letter re-run at `now` by the operator named `by`, unless it already is (then None:
    one re-run per failure)."""
    async with writing(engine) as connection:
        row = (
            await connection.execute(
                update(DEAD_LETTERS)
                .where(DEAD_LETTERS.c.id == letter_id, DEAD_LETTERS.c.retried_at.is_(None))
                .values(retried_at=now, retried_by=by)
                .returning(*DEAD_LETTERS.c)
            )
        ).first()
        return None if row is None else _letter(row)


async def release_retry(engine: AsyncEngine, letter_id: str) -> None:
    """Undo `claim_retry` when the re-run could not be queued."""
    async with writing(engine) as connection:
        await connection.execute(
            update(DEAD_LETTERS)
            .where(DEAD_LETTERS.c.id == letter_id)
            .values(retried_at=None, retried_by=None)
        )


async def waiting_count(engine: AsyncEngine) -> int:
    """Dead letters not re-run yet (for `/metrics` and the dashboard)."""
    async with engine.connect() as connection:
        count = await connection.scalar(
            select(func.count()).select_from(DEAD_LETTERS).where(DEAD_LETTERS.c.retried_at.is_(None))
        )
        return int(count or 0)

"""Rooms read together: the room states that concurrent jobs ask for are read with one SELECT.

Every room job starts by reading its room (`writer.load_room`). Read alone, each read checks out a
connection, then BEGIN, the SELECT and the ROLLBACK that returns the connection: three round trips
and SQLAlchemy's per-statement work, for one row. `read_state` hands the sid to a reader that takes
every sid waiting and reads them in one `SELECT ... WHERE sid IN (...)`. A read that arrives while a
SELECT is under way waits for the next one, so that every caller sees the room as it stood after it
asked (as a read of its own would). At low load a SELECT reads one room and costs what reading it
alone did.
"""

from __future__ import annotations

import asyncio
import weakref
from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncEngine

from workers.store.models import ROOMS

MAX_READ = 500  # sids in one SELECT

_SELECT_STATES = select(ROOMS.c.sid, ROOMS.c.state).where(ROOMS.c.sid.in_(bindparam("sids", expanding=True)))


class _Reader:
    """The sids waiting to be read from one engine, on one event loop, and the task reading them."""

    def __init__(self, engine: AsyncEngine, loop: asyncio.AbstractEventLoop) -> None:
        self.engine, self.loop = engine, loop
        self.waiting: dict[str, list[asyncio.Future[dict[str, Any] | None]]] = {}
        self.task: asyncio.Task[None] | None = None

    async def read(self, sid: str) -> dict[str, Any] | None:
        future: asyncio.Future[dict[str, Any] | None] = self.loop.create_future()
        self.waiting.setdefault(sid, []).append(future)
        if self.task is None or self.task.done():
            self.task = self.loop.create_task(self._flush())
        return await future

    async def _flush(self) -> None:
        while self.waiting:
            sids = list(self.waiting)[:MAX_READ]
            taken = {sid: self.waiting.pop(sid) for sid in sids}
            try:
                async with self.engine.connect() as connection:
                    rows = await connection.execute(_SELECT_STATES, {"sids": sids})
                    states = {row.sid: row.state for row in rows}
            except Exception as exc:  # every caller sees the failure (and its job retries)
                for futures in taken.values():
                    for future in futures:
                        if not future.done():
                            future.set_exception(exc)
                continue
            for sid, futures in taken.items():
                for future in futures:
                    if not future.done():  # its job gave up waiting (timed out)
                        future.set_result(states.get(sid))


_readers: weakref.WeakKeyDictionary[AsyncEngine, _Reader] = weakref.WeakKeyDictionary()


async def read_state(engine: AsyncEngine, sid: str) -> dict[str, Any] | None:
    """The room's stored state (`rooms.state`), or None for a room Warden has never heard of; read
    together with the other rooms asked for meanwhile (see the module's doc)."""
    loop = asyncio.get_running_loop()
    reader = _readers.get(engine)
    if reader is None or reader.loop is not loop:
        reader = _readers[engine] = _Reader(engine, loop)
    return await reader.read(sid)

"""SQLite through aiosqlite, one trip to the connection's thread per statement.

aiosqlite runs each sqlite3 call on the connection's own thread, and SQLAlchemy's adapter makes four
calls of a SELECT (make a cursor, execute, fetch the rows, close the cursor) and three of a write: four
hand-overs to the thread and back, each a wake-up of the thread and of the event loop, ~20 µs of CPU
apiece, where SQLite itself takes a few µs for one of Warden's statements. Here a statement is one
hand-over: the thread makes the cursor, executes, fetches every row (SQLAlchemy's adapter fetched them
all at once too), notes the description, row count and last row id, and closes the cursor; the cursor
SQLAlchemy holds only hands out what was fetched. Same sqlite3 calls, same connection, same thread,
same transactions: only fewer trips. Commits and rollbacks were one hand-over already.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from types import SimpleNamespace
from typing import Any

import aiosqlite
from sqlalchemy.dialects.sqlite.aiosqlite import AsyncAdapt_aiosqlite_dbapi

Done = tuple[Any, int, int | None, list[Any]]  # description, row count, last row id, rows


def _run(connection: sqlite3.Connection, sql: str, parameters: Any, many: bool) -> Done:
    """On the connection's thread: the whole statement, its rows fetched."""
    cursor = connection.cursor()
    try:
        if many:
            cursor.executemany(sql, parameters)
        else:
            cursor.execute(sql, parameters)
        description = cursor.description
        rows = cursor.fetchall() if description else []
        return description, cursor.rowcount, cursor.lastrowid, rows
    finally:
        cursor.close()


class _Cursor:
    """What SQLAlchemy's adapter asks of an aiosqlite cursor, each statement one trip to the thread."""

    arraysize = 1

    def __init__(self, connection: OneTripConnection) -> None:
        self._connection = connection
        self.description: Any = None
        self.rowcount = -1
        self.lastrowid: int | None = None
        self._rows: list[Any] = []

    async def __aenter__(self) -> _Cursor:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        return None

    async def _execute(self, sql: str, parameters: Any, many: bool) -> _Cursor:
        connection = self._connection
        done: Done = await connection._execute(_run, connection._conn, sql, parameters, many)  # type: ignore[no-untyped-call]
        self.description, self.rowcount, self.lastrowid, self._rows = done
        return self

    async def execute(self, sql: str, parameters: Any = ()) -> _Cursor:
        return await self._execute(sql, parameters, False)

    async def executemany(self, sql: str, parameters: Sequence[Any]) -> _Cursor:
        return await self._execute(sql, parameters, True)

    async def fetchone(self) -> Any:
        return self._rows.pop(0) if self._rows else None

    async def fetchmany(self, size: int | None = None) -> list[Any]:
        n = self.arraysize if size is None else size
        taken, self._rows = self._rows[:n], self._rows[n:]
        return taken

    async def fetchall(self) -> list[Any]:
        taken, self._rows = self._rows, []
        return taken

    async def close(self) -> None:
        self._rows = []

    async def setinputsizes(self, *_sizes: Any) -> None:
        return None

    def setoutputsize(self, *_args: Any) -> None:
        return None


class OneTripConnection(aiosqlite.Connection):
    """An aiosqlite connection whose cursors take one trip to its thread per statement."""

    def cursor(self) -> _Cursor:  # type: ignore[override]
        return _Cursor(self)


def _connect(database: str, *, iter_chunk_size: int = 64, **kwargs: Any) -> OneTripConnection:
    """`aiosqlite.connect`, making a `OneTripConnection`."""

    def connector() -> sqlite3.Connection:
        connection: sqlite3.Connection = sqlite3.connect(database, **kwargs)
        return connection

    return OneTripConnection(connector, iter_chunk_size)


def dbapi() -> AsyncAdapt_aiosqlite_dbapi:
    """The DBAPI module for `create_async_engine(..., module=...)`: SQLAlchemy's aiosqlite adapter over
    aiosqlite, with `OneTripConnection`s."""
    names = {name: getattr(aiosqlite, name) for name in dir(aiosqlite) if not name.startswith("__")}
    connect: Callable[..., OneTripConnection] = _connect
    return AsyncAdapt_aiosqlite_dbapi(SimpleNamespace(**{**names, "connect": connect}), sqlite3)  # type: ignore[arg-type]

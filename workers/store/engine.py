"""The async database engine: SQLite (aiosqlite) by default, PostgreSQL (asyncpg) in production."""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sqlalchemy import Table, event
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine.url import make_url
from sqlalchemy.exc import DBAPIError, DisconnectionError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from workers.store import sqlite_driver

SQLITE_BUSY_TIMEOUT_MS = 10_000
# WAL checkpoints, bounded: SQLite copies the WAL into the database every ~4 MB written (1,000 pages),
# and a WAL that a long read made grow is cut back to 16 MB at the next checkpoint, not left at its peak.
SQLITE_WAL_AUTOCHECKPOINT_PAGES = 1000
SQLITE_WAL_LIMIT_BYTES = 16 * 1024 * 1024


def make_engine(url: str) -> AsyncEngine:
    """Create the engine for a normalised URL (see `settings.normalise_database_url`)."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        engine = create_async_engine(url, pool_size=10, max_overflow=10)
        event.listen(engine.sync_engine, "checkout", _drop_closed)
        return engine
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_async_engine(
        url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}, module=sqlite_driver.dbapi()
    )

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take over transaction control from pysqlite so that BEGIN IMMEDIATE (below) is what runs.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        # In WAL mode NORMAL never corrupts the database; a power cut may lose the last commits, which
        # LiveKit's retries and the ARQ job (still in Redis until it finishes) make good.
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute(f"PRAGMA wal_autocheckpoint={SQLITE_WAL_AUTOCHECKPOINT_PAGES}")
        cursor.execute(f"PRAGMA journal_size_limit={SQLITE_WAL_LIMIT_BYTES}")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Any) -> None:
        # Writers take the lock up front: a deferred transaction that upgrades to a write lock fails
        # with SQLITE_BUSY at once instead of waiting, when another process writes. Readers do not
        # take it, so they never queue behind writers.
        immediate = connection.get_execution_options().get(_WRITER_OPTION)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


def _drop_closed(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
    """A pooled PostgreSQL connection that the server closed (a restart, an idle timeout) is replaced
    at check-out rather than handed out to fail. asyncpg marks its connection closed as soon as the
    event loop reads the server's goodbye, so this asks nothing of the server, unlike a pre-ping (a
    round trip, some 250 µs of CPU per transaction). A connection lost in the moment before it is
    checked out fails its statement instead; SQLAlchemy then empties the pool of the connections made
    before, and the job is retried (`workers.jobs.delivery.dead_letters`)."""
    if dbapi_connection.driver_connection.is_closed():
        raise DisconnectionError("the server closed this pooled connection")


# SQLSTATE cannot_connect_now: PostgreSQL refuses a new session while it is starting up or shutting down.
CANNOT_CONNECT_NOW = "57P03"


def connection_lost(exc: BaseException) -> bool:
    """Whether `exc` is a statement's failure because the database connection was lost (the server
    restarted under it), or because no new one could be had: the server is starting up or shutting down
    (SQLSTATE 57P03, asyncpg's `CannotConnectNowError`, which SQLAlchemy passes on as a bare
    `DBAPIError`), or is stopped or going down (the connection refused or reset as it is made, which
    asyncpg raises as the socket's own `ConnectionError` and SQLAlchemy passes on unwrapped): no fault
    of the job, which succeeds when tried again on a new connection."""
    if isinstance(exc, ConnectionError):
        return True
    if not isinstance(exc, DBAPIError):
        return False
    return exc.connection_invalidated or getattr(exc.orig, "sqlstate", None) == CANNOT_CONNECT_NOW


def outage(exc: BaseException) -> bool:
    """Whether `exc` says the database or Redis is unavailable, which every room or agent a run takes
    in turn would meet alike (the run ends: its next one tries again), rather than that the one at hand
    is at fault (passed over, the run going on with the others): SQLAlchemy's `OperationalError` (SQLite
    locked past its busy timeout or unreadable, PostgreSQL's operational failures), a lost connection
    (`connection_lost`), a socket's error, or Redis's connection or timeout error."""
    unreachable = (OperationalError, OSError, RedisConnectionError, RedisTimeoutError)
    return isinstance(exc, unreachable) or connection_lost(exc)


_WRITER_OPTION = "warden_writer"
# Keyed by the engine itself (weakly): an id() could be reused by a later engine once this one is gone.
_writers: weakref.WeakKeyDictionary[AsyncEngine, AsyncEngine] = weakref.WeakKeyDictionary()


_sqlite_locks: weakref.WeakKeyDictionary[AsyncEngine, asyncio.Lock] = weakref.WeakKeyDictionary()


@contextlib.asynccontextmanager
async def writing(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A write transaction. On SQLite, which has one writer at a time, it takes the write lock at
    BEGIN, and this process's writers queue on an in-process lock first rather than in SQLite's busy
    handler, whose growing sleeps add seconds under load (every writer must come through here, or
    it meets the others in the busy handler). PostgreSQL needs neither: rows are locked as written."""
    if engine.dialect.name != "sqlite":
        async with engine.begin() as connection:
            yield connection
        return
    writer = _writers.get(engine)
    if writer is None:
        writer = _writers[engine] = engine.execution_options(**{_WRITER_OPTION: True})
    async with _sqlite_locks.setdefault(engine, asyncio.Lock()), writer.begin() as connection:
        yield connection


def dialect_insert(connection: AsyncConnection, table: Table) -> Any:
    """An INSERT for `table` in the connection's dialect, so `.on_conflict_do_nothing()` is available."""
    return (postgresql_insert if connection.dialect.name == "postgresql" else sqlite_insert)(table)

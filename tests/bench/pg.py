"""A fresh PostgreSQL database for a benchmark run, on the server the tests use, or on a private cluster
started for the run when none answers (as `make test` does), or None when neither can be had."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Iterator

import asyncpg

from tests.support import postgres


@contextlib.contextmanager
def server() -> Iterator[str | None]:
    """The admin URL of the server the tests use, else of a private cluster stopped afterwards."""
    url = os.environ.get("WARDEN_TEST_POSTGRES_URL", postgres.DEFAULT_URL)
    if postgres.answers(url):
        yield url
        return
    try:
        private = postgres.make_private()
    except (RuntimeError, OSError) as exc:
        print(f"bench: no PostgreSQL ({exc})", flush=True)
        yield None
        return
    os.environ["WARDEN_TEST_POSTGRES_URL"] = private.url
    try:
        yield private.url
    finally:
        private.stop()


def fresh_database(name: str, admin_url: str | None = None) -> str | None:
    """Drop and create database `name` on the server of `admin_url` (default: the one the tests use); its
    URL, or None when no PostgreSQL answers."""
    admin_url = admin_url or os.environ.get("WARDEN_TEST_POSTGRES_URL", postgres.DEFAULT_URL)

    async def create() -> str | None:
        try:
            admin = await asyncpg.connect(admin_url, timeout=3)
        except (TimeoutError, OSError, asyncpg.PostgresError):
            return None
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            await admin.execute(f'CREATE DATABASE "{name}"')
        finally:
            await admin.close()
        return admin_url.rsplit("/", 1)[0] + f"/{name}"

    return asyncio.run(create())

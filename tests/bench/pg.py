"""A fresh PostgreSQL database for a benchmark run, on the server the tests use (or None without one)."""

from __future__ import annotations

import asyncio

import asyncpg

from tests.support.postgres import POSTGRES_ADMIN_URL


def fresh_database(name: str, admin_url: str = POSTGRES_ADMIN_URL) -> str | None:
    """Drop and create database `name` on the server of `admin_url`; its URL, or None when no PostgreSQL
    answers."""

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

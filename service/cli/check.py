"""`warden check`: is this deployment able to work? Settings, LiveKit (with the configured key), Redis
and the database, each reported in plain words with what to do about a failure."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

import redis.asyncio as aioredis
from alembic.script import ScriptDirectory
from redis.exceptions import RedisError
from rich.console import Console
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from workers.adapters.livekit import LiveKitRooms
from workers.core.errors import SettingsError, UpstreamError
from workers.migrate import alembic_config
from workers.settings import Settings, load_settings
from workers.store.engine import make_engine
from workers.store.retention import closed_rooms_older_than

Check = Callable[[Settings], Awaitable[str]]


async def livekit(settings: Settings) -> str:
    if not settings.livekit_url:
        raise CheckFailed("LIVEKIT_URL is not set: the worker cannot check rooms or re-dispatch agents")
    key, secret = settings.primary_key()
    rooms = LiveKitRooms(settings.livekit_url, key, secret, timeout=settings.warden_livekit_timeout_seconds)
    try:
        listed = await rooms.list_rooms()
    except UpstreamError as exc:
        hint = {
            "unauthenticated": "the API key or secret is wrong for this LiveKit",
            "permission_denied": "the API key lacks the roomList/roomAdmin grants",
        }.get(exc.code, "is LIVEKIT_URL right, and is LiveKit up?")
        raise CheckFailed(f"LiveKit at {settings.livekit_url} refused list_rooms ({exc}): {hint}") from None
    finally:
        await rooms.aclose()
    return f"LiveKit at {settings.livekit_url} answered list_rooms with key {key}: {len(listed)} room(s) live"


async def redis(settings: Settings) -> str:
    pool = aioredis.ConnectionPool.from_url(
        settings.redis_url, socket_connect_timeout=3, socket_timeout=3, **settings.redis_pool_options()
    )
    client = aioredis.Redis(connection_pool=pool)
    try:
        await client.ping()
        queued = await client.zcard(settings.warden_queue_name)
    except (RedisError, OSError) as exc:
        raise CheckFailed(
            f"Redis unreachable ({type(exc).__name__}): check REDIS_URL and that Redis runs"
        ) from None
    finally:
        await client.aclose()
        await pool.disconnect()
    return f"Redis answers; {queued} job(s) in the queue {settings.warden_queue_name}"


async def database(settings: Settings) -> str:
    engine = make_engine(settings.database_url)
    try:
        async with engine.connect() as connection:
            current = await connection.scalar(text("SELECT version_num FROM alembic_version"))
    except SQLAlchemyError as exc:
        message = str(exc).splitlines()[0]
        if "alembic_version" in message:
            raise CheckFailed("the database has no schema: run `warden-migrate` (the release step)") from None
        raise CheckFailed(f"database unreachable ({type(exc).__name__}): check DATABASE_URL") from None
    finally:
        await engine.dispose()
    head = ScriptDirectory.from_config(alembic_config(settings.database_url)).get_current_head()
    if current != head:
        raise CheckFailed(f"the database schema is at {current}, Warden needs {head}: run `warden-migrate`")
    return f"database ({engine.dialect.name}) answers; schema {current} is current"


async def retention(settings: Settings) -> str:
    engine = make_engine(settings.database_url)
    try:
        backlog = await closed_rooms_older_than(engine, time.time() - settings.retention_seconds)
    except SQLAlchemyError as exc:
        raise CheckFailed(
            f"could not read the rooms ({type(exc).__name__}): see the database check"
        ) from None
    finally:
        await engine.dispose()
    kept = settings.warden_retention
    stated = f"closed rooms and resolved incidents are deleted after {kept} (WARDEN_RETENTION)"
    if backlog:  # the worker deletes them within the minute: a backlog says it is not running
        return f"{stated}; {backlog} closed room(s) older than that are still there: is the worker running?"
    return f"{stated}; none is overdue"


class CheckFailed(Exception):
    pass


CHECKS: tuple[tuple[str, Check], ...] = (
    ("LiveKit", livekit),
    ("Redis", redis),
    ("database", database),
    ("retention", retention),
)


async def run() -> int:
    out = Console(highlight=False, soft_wrap=True)
    try:
        settings = load_settings()
    except SettingsError as exc:
        out.print(f"[red]✗ settings:[/red] {exc}")
        return 1
    out.print("[green]✓ settings:[/green] valid")
    failed = 0
    for name, check in CHECKS:
        try:
            out.print(f"[green]✓ {name}:[/green] {await check(settings)}")
        except CheckFailed as exc:
            failed += 1
            out.print(f"[red]✗ {name}:[/red] {exc}")
    out.print("all good" if not failed else f"{failed} problem(s) found")
    return 1 if failed else 0

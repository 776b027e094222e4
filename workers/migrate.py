"""Apply Alembic migrations to `DATABASE_URL` (the Procfile's `release:` step, and `make run`)."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy.ext.asyncio import AsyncEngine

from workers import logs
from workers.settings import load_settings_or_exit
from workers.store.engine import make_engine

log = logging.getLogger("warden.release")
MIGRATIONS = Path(__file__).parent / "store" / "migrations"


def alembic_config(database_url: str) -> Config:
    """An Alembic config pointing at Warden's migrations and the given (normalised) URL."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


async def upgrade(engine: AsyncEngine, *, legacy_agent: str = "", revision: str = "head") -> None:
    """Bring the database behind `engine` to the newest schema (or to `revision`). `legacy_agent`:
    `WARDEN_AGENT_NAME`, whom rooms stored before they had a view per expected agent were watched for
    (0007 gives each such open room a row for that agent)."""
    config = alembic_config(engine.url.render_as_string(hide_password=False))

    def _run(connection: object) -> None:
        config.attributes["connection"] = connection
        config.attributes["legacy_agent"] = legacy_agent
        command.upgrade(config, revision)

    async with engine.begin() as connection:
        await connection.run_sync(_run)


def main() -> None:
    """Entry point: `python -m workers.migrate`."""
    settings = load_settings_or_exit()
    logs.configure(settings.warden_log_level, settings.warden_log_format, process="release")
    engine = make_engine(settings.database_url)

    async def _go() -> None:
        try:
            await upgrade(engine, legacy_agent=settings.warden_agent_name)
        finally:
            await engine.dispose()

    asyncio.run(_go())
    if settings.warden_log_format == "json":
        log.info("database is at the newest schema")
    else:
        print("warden: database is at the newest schema")


if __name__ == "__main__":
    main()

"""Running Alembic's upgrade or downgrade to a given revision on a test's database."""

from __future__ import annotations

from alembic import command
from sqlalchemy.ext.asyncio import AsyncEngine

from workers.migrate import alembic_config


async def migrate(engine: AsyncEngine, how: str, revision: str, *, legacy_agent: str = "") -> None:
    """`how` ("upgrade" or "downgrade") the database behind `engine` to `revision`; `legacy_agent` as
    `WARDEN_AGENT_NAME` gives it to the release phase's upgrade."""
    config = alembic_config(engine.url.render_as_string(hide_password=False))

    def run(connection: object) -> None:
        config.attributes["connection"] = connection
        config.attributes["legacy_agent"] = legacy_agent
        getattr(command, how)(config, revision)

    async with engine.begin() as connection:
        await connection.run_sync(run)

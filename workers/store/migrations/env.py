"""Alembic environment: migrations run on a connection handed in by `workers.migrate.upgrade`."""

from __future__ import annotations

from alembic import context
from sqlmodel import SQLModel

import workers.store.models  # noqa: F401 - registers the tables on SQLModel.metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations with `python -m workers.migrate`, which supplies the connection")

context.configure(
    connection=connection,
    target_metadata=SQLModel.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()

"""SQLite's statements through `workers.store.sqlite_driver`: what the database answers is what sqlite3
answers (rows, row counts, RETURNING, constraint errors), with one trip to the connection's thread per
statement."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError

from workers.migrate import upgrade
from workers.store.engine import make_engine, writing
from workers.store.models import DEPLOYMENT_RESTARTS
from workers.store.sqlite_driver import OneTripConnection


async def test_statements_answer_as_sqlite_does_in_one_trip_each(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = make_engine(f"sqlite+aiosqlite:///{tmp_path}/w.db")
    trips: list[object] = []
    real = OneTripConnection._execute

    async def counted(self: OneTripConnection, fn: Any, *args: Any, **kwargs: Any) -> Any:
        trips.append(fn)
        return await real(self, fn, *args, **kwargs)  # type: ignore[no-untyped-call]

    try:
        await upgrade(engine)
        monkeypatch.setattr(OneTripConnection, "_execute", counted)
        rows = [{"deployment": f"d{i}", "pending": ""} for i in range(300)]
        async with writing(engine) as connection:
            trips.clear()
            await connection.execute(insert(DEPLOYMENT_RESTARTS), rows)  # executemany
            assert len(trips) == 1
            changed = await connection.execute(
                update(DEPLOYMENT_RESTARTS)
                .where(DEPLOYMENT_RESTARTS.c.deployment.in_(["d1", "d2", "nobody"]))
                .values(pending="x")
            )
            assert changed.rowcount == 2
            added = await connection.execute(
                sqlite_insert(DEPLOYMENT_RESTARTS)
                .values(deployment=bindparam("d"), pending="")
                .on_conflict_do_nothing(index_elements=["deployment"])
                .returning(DEPLOYMENT_RESTARTS.c.deployment),
                {"d": "new"},
            )
            assert added.scalars().all() == ["new"]
            trips.clear()
            found = await connection.execute(
                select(DEPLOYMENT_RESTARTS.c.deployment, DEPLOYMENT_RESTARTS.c.pending)
                .where(DEPLOYMENT_RESTARTS.c.pending == "x")
                .order_by(DEPLOYMENT_RESTARTS.c.deployment)
            )
            assert [tuple(r) for r in found] == [("d1", "x"), ("d2", "x")]
            assert len(trips) == 1  # make the cursor, execute, fetch, close: one hand-over
        async with engine.connect() as connection:
            assert len((await connection.execute(select(DEPLOYMENT_RESTARTS))).all()) == 301  # committed
        with pytest.raises(IntegrityError):  # the group commit's conflict path depends on this error
            async with writing(engine) as connection:
                await connection.execute(insert(DEPLOYMENT_RESTARTS).values(deployment="d1", pending=""))
        async with engine.connect() as connection:
            rolled_back = await connection.scalar(
                select(DEPLOYMENT_RESTARTS.c.pending).where(DEPLOYMENT_RESTARTS.c.deployment == "d1")
            )
        assert rolled_back == "x"
    finally:
        await engine.dispose()

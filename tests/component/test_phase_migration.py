"""Rooms stored before `no_agent_expected` existed: migration 0010 names the phase of an open room with
people that expects no agent (so that `discover` looks at it for a dispatch made later, and `?state=`
finds it); an empty room stays `idle`, a room watched for WARDEN_AGENT_NAME (stored before views) is not
taken for one expecting nothing; a downgrade writes `idle` back."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.support.migrations import migrate
from tests.support.settings import make_settings
from workers.core import stored
from workers.core.room import Person, Room
from workers.store.engine import make_engine
from workers.store.models import ROOMS
from workers.store.room_rows import room_values


def _row(room: Room, state: dict[str, object] | None = None) -> dict[str, object]:
    """The room's row as the version before wrote it: phase `idle` for a room with people and no agent."""
    values = room_values(room, 100, 100.0)
    return {
        **values,
        "phase": "idle",
        "state": state or values["state"],
        "version": 1,
        "first_seen_at": 100.0,
    }


async def test_rooms_with_people_that_expect_no_agent_are_named_so_and_back(tmp_path: Path) -> None:
    engine = make_engine(make_settings(database_url=f"sqlite:///{tmp_path}/old.db").database_url)
    alice = Person("alice", "PA_1", 100.0)
    expecting_none = replace(Room("RM_none", "townhall", people=(alice,)), watch=None)  # learned: none
    empty = replace(Room("RM_empty", "empty"), watch=None)
    # stored before views: the room's own fields, watched for WARDEN_AGENT_NAME
    before_views = stored.to_dict(Room("RM_old", "old", people=(alice,)))
    del before_views["watch"], before_views["views"]
    try:
        await migrate(engine, "upgrade", "0009")
        async with engine.begin() as connection:
            await connection.execute(
                insert(ROOMS),
                [_row(expecting_none), _row(empty), _row(Room("RM_old", "old"), before_views)],
            )
        await migrate(engine, "upgrade", "head", legacy_agent="notetaker")
        phases = await _phases(engine)
        # RM_old keeps the phase its agent's part says: it expects WARDEN_AGENT_NAME, never "nothing"
        assert phases == {"RM_none": "no_agent_expected", "RM_empty": "idle", "RM_old": "idle"}
        await migrate(engine, "downgrade", "0009")
        assert (await _phases(engine))["RM_none"] == "idle"
    finally:
        await engine.dispose()


async def _phases(engine: AsyncEngine) -> dict[str, str]:
    async with engine.connect() as connection:
        return {sid: phase for sid, phase in await connection.execute(select(ROOMS.c.sid, ROOMS.c.phase))}

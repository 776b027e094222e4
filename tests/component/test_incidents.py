"""Incident rows (`workers.store.incidents`):
joining the open incident in one statement, and only while open."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from workers.store import incidents
from workers.store.models import INCIDENT_ROOMS


async def _rooms(engine: AsyncEngine, incident_id: str) -> list[str]:
    async with engine.connect() as connection:
        rows = await connection.scalars(
            select(INCIDENT_ROOMS.c.room_sid).where(INCIDENT_ROOMS.c.incident_id == incident_id)
        )
        return sorted(rows)


async def test_a_room_joins_the_open_incident_once_and_never_a_resolved_one(engine: AsyncEngine) -> None:
    incident_id, opened = await incidents.open_or_join(engine, "notetaker", "3 rooms", [("RM_a", "a")], 1.0)
    assert opened
    assert await incidents.join_open(engine, incident_id, "notetaker", ("RM_b", "b"), 2.0) is True
    assert await incidents.join_open(engine, incident_id, "notetaker", ("RM_b", "b"), 3.0) is False  # in it
    assert await incidents.join_open(engine, incident_id, "other-agent", ("RM_c", "c"), 3.0) is False
    assert await _rooms(engine, incident_id) == ["RM_a", "RM_b"]
    assert await incidents.room_recovered(engine, "notetaker", "RM_a", 4.0) is None  # RM_b still waits
    resolved = await incidents.room_recovered(engine, "notetaker", "RM_b", 4.0)
    assert resolved is not None and resolved.resolved_at == 4.0
    assert await incidents.join_open(engine, incident_id, "notetaker", ("RM_d", "d"), 5.0) is False
    assert await _rooms(engine, incident_id) == ["RM_a", "RM_b"]

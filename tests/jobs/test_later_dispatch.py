"""Rooms with zero configuration (no `WARDEN_AGENT_NAME`, no rules): what Warden shows of a room that
expects no agent, and what it does when the application dispatches one later (issue 23)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.support.jobs_world import World, jobs_world

ROOM = "standup-9"


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    async with jobs_world(tmp_path, warden_agent_name="") as ready:
        yield ready


async def test_a_room_with_people_that_expects_no_agent_says_so_and_not_idle(world: World) -> None:
    await world.person_joins(ROOM, "alice")
    await world.person_joins(ROOM, "bob")
    assert await world.phase(ROOM) == "waiting"  # LiveKit not asked yet
    await world.wait(16)  # the join deadline: LiveKit lists no dispatch with a name
    assert await world.phase(ROOM) == "no_agent_expected"
    assert world.livekit.dispatched == []
    await world.person_leaves(ROOM, "alice")
    assert await world.phase(ROOM) == "no_agent_expected"
    await world.person_leaves(ROOM, "bob")
    assert await world.phase(ROOM) == "idle"  # now nobody is in it

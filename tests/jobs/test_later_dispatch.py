"""Rooms with zero configuration (no `WARDEN_AGENT_NAME`, no rules): what Warden shows of a room that
expects no agent, and what it does when the application dispatches one later (issue 23)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.support.jobs_world import JOIN_AFTER, World, jobs_world

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


async def test_a_dispatch_made_30_s_into_a_room_and_never_served_is_learned_and_re_dispatched(
    world: World,
) -> None:
    world.livekit.app_dispatch(ROOM, "assistant")
    await world.person_joins(ROOM, "alice")
    await world.agent_joins(ROOM, "assistant-1", "assistant")
    await world.wait(30)
    assert await world.phase(ROOM) == "agent_present"  # the assistant, learned at the join deadline
    notetaker = world.livekit.app_dispatch(ROOM, "notetaker")  # no notetaker worker takes it
    await world.wait(10)  # reconciliation lists the room's dispatches at T0 + 40
    assert "Expect" in await world.timeline(ROOM)
    assert world.livekit.dispatched == []  # its own SLA runs from its dispatch, to T0 + 45
    await world.wait(4.9)
    assert world.livekit.dispatched == []
    await world.wait(0.1)
    assert world.livekit.dispatched == [(ROOM, "notetaker")]  # only the notetaker: the assistant is there
    assert world.livekit.withdrawn == [(ROOM, notetaker.id)]
    await world.wait(JOIN_AFTER)
    assert sorted(a.split("-")[0] for a in world.livekit.agents_in(ROOM)) == ["assistant", "notetaker"]


async def test_a_dispatch_made_later_and_served_is_left_alone_and_watched(world: World) -> None:
    await world.person_joins(ROOM, "alice")
    await world.wait(20)
    assert await world.phase(ROOM) == "no_agent_expected"
    world.livekit.app_dispatch(ROOM, "notetaker")
    await world.wait(1)
    await world.agent_joins(ROOM, "notetaker-1", "notetaker")  # the app's worker serves it
    await world.wait(60)
    assert await world.phase(ROOM) == "agent_present"  # learned, and its agent is there: watched
    assert world.livekit.dispatched == []
    world.livekit.leave(ROOM, "notetaker-1")  # it leaves unannounced while alice stays
    await world.wait(30 + 20 + JOIN_AFTER)  # found missing by reconciliation, then its rejoin SLA
    assert world.livekit.dispatched == [(ROOM, "notetaker")]


async def test_rooms_that_expect_no_agent_are_looked_at_each_minute_within_the_call_budget(
    tmp_path: Path,
) -> None:
    """Without reconciliation (its batch may not reach every room): the slow look alone, 1 call a
    second (2 rooms per 5-s run), every 60 s per room at most."""
    async with jobs_world(
        tmp_path,
        crons=("sweep", "discover"),
        warden_agent_name="",
        warden_discover_seconds=60,
        warden_discover_calls_per_second=1,
    ) as world:
        rooms = [f"{ROOM}-{i}" for i in range(4)]
        for room in rooms:
            await world.person_joins(room)
        await world.wait(16)
        assert {await world.phase(r) for r in rooms} == {"no_agent_expected"}
        world.livekit.listed.clear()
        await world.wait(120)
        assert len(world.livekit.listed) <= 120 / 5 * 2  # never more than 2 rooms a run
        assert sorted(set(world.livekit.listed)) == rooms and len(world.livekit.listed) <= 2 * len(rooms) + 4
        world.livekit.app_dispatch(rooms[0], "notetaker")  # ten minutes in, never served
        await world.wait(60 + 15)
        assert world.livekit.dispatched == [(rooms[0], "notetaker")]
        assert await world.phase(rooms[0]) == "agent_active"

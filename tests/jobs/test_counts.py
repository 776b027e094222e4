"""What the room's API says Warden did matches its timeline (issue 23): how many re-dispatches, and which
dispatch is live now, after the agent came."""

from __future__ import annotations

from typing import Any

from service.api.rooms import room_summary
from tests.support.jobs_world import AGENT, World
from workers.store.queries import find_room

ROOM = "call-42"


async def shown(world: World) -> tuple[dict[str, Any], list[str]]:
    """The room as `GET /api/rooms/{name}` shows it: its summary, and the names of its timeline's lines."""
    found = await find_room(world.engine, ROOM)
    assert found is not None
    room, timeline = found
    return room_summary(room), [entry.name for entry in timeline]


async def test_two_redispatches_read_two_and_name_the_live_dispatch_once_the_agent_came(world: World) -> None:
    world.agent_down()  # neither re-dispatch is answered
    await world.person_joins(ROOM)
    await world.wait(15)  # the join SLA: the first re-dispatch
    await world.wait(15)  # its confirm deadline: the second
    assert world.livekit.dispatched == [(ROOM, AGENT), (ROOM, AGENT)]
    (live,) = world.livekit.dispatches(ROOM, AGENT)  # the first was deleted by the second
    await world.agent_joins(ROOM, "agent-late")  # the deployment is back: the live dispatch's agent
    summary, timeline = await shown(world)
    assert timeline.count("Redispatch") == 2 and timeline.count("agent_dispatched") == 2
    assert summary["state"] == "agent_present"
    assert summary["recovery"]["redispatches"] == 2
    assert summary["recovery"]["dispatch_id"] == live.id
    (notetaker,) = summary["expected"]
    assert (notetaker["recovery"]["redispatches"], notetaker["recovery"]["dispatch_id"]) == (2, live.id)

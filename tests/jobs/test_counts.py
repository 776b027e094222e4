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
    return room_summary(found.room), await world.timeline(ROOM)


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


async def test_a_redispatch_whose_answer_was_lost_is_counted_and_its_dispatch_named_at_the_next_look(
    world: World,
) -> None:
    """The second re-dispatch lands, but LiveKit's answer is lost and the retries fail until the agent it
    brought has arrived: the job finds its step moot and records no `agent_dispatched`. The first
    dispatch, which Warden deleted, must not stay named as the live one."""
    world.agent_down()
    await world.person_joins(ROOM)
    await world.wait(15)  # the first re-dispatch: never answered
    world.down.discard(AGENT)  # the deployment is back for the second
    world.livekit.fail("redispatch", landed=True)  # it lands; LiveKit's answer is lost
    world.livekit.fail("redispatch", times=2)  # and the retries fail until its agent is there
    await world.wait(15 + 10)
    (first,) = world.livekit.withdrawn
    (live,) = world.livekit.dispatches(ROOM, AGENT)
    summary, timeline = await shown(world)
    assert timeline.count("Redispatch") == 2 and timeline.count("agent_dispatched") == 1
    assert summary["state"] == "agent_active" and summary["recovery"]["redispatches"] == 2
    await world.wait(30)  # reconciliation lists the room's dispatches
    summary, _ = await shown(world)
    assert summary["recovery"]["dispatch_id"] == live.id != first[1]

"""Reconciliation (the worker's cron, every 30 s here as in production): what LiveKit has, against what
Warden heard; lost webhooks made good. Mirrors `tests/component/test_reconcile.py`."""

from __future__ import annotations

import pytest

from tests.support.jobs_world import AGENT, JOIN_AFTER, T0, World

ROOM = "call-42"


async def test_a_room_whose_room_finished_was_lost_is_closed_not_re_dispatched(world: World) -> None:
    await world.person_joins(ROOM)
    await world.agent_joins(ROOM, "agent-1")
    world.livekit.close(ROOM)  # the room ends; its webhooks are lost
    await world.wait(60)
    assert await world.phase(ROOM) == "closed"
    assert (await world.timeline(ROOM))[-1] == "reconciled"
    await world.wait(60)
    assert world.livekit.looked == [] and world.livekit.dispatched == []


async def test_a_room_warden_never_heard_of_is_adopted_and_its_people_get_an_agent(world: World) -> None:
    world.livekit.join(ROOM, "alice")  # every webhook of the room was lost
    await world.wait(9.9)  # reconciliation at 10 s (seconds 0 and 30 of the minute; T0 is at 20)
    assert await world.phase(ROOM) == ""
    await world.wait(0.1)
    assert await world.phase(ROOM) == "waiting"
    assert world.timers() == [("deadline:RM_call-42:1", 5.0)]  # the join SLA, from when LiveKit saw her
    await world.wait(5 + JOIN_AFTER)
    assert world.livekit.dispatched == [(ROOM, AGENT)] and await world.phase(ROOM) == "agent_active"


async def test_an_agent_that_left_unannounced_is_found_missing_and_replaced(world: World) -> None:
    await world.person_joins(ROOM)
    await world.agent_joins(ROOM, "agent-1")
    await world.agent_publishes(ROOM, "agent-1")
    world.livekit.leave(ROOM, "agent-1")  # its participant_left was lost
    await world.wait(40)  # looked at 10 s (too soon after the join to trust the listing), and at 40 s
    assert await world.phase(ROOM) == "agent_lost"
    assert world.livekit.dispatched == []
    await world.wait(20 + JOIN_AFTER)  # the rejoin SLA
    assert world.livekit.dispatched == [(ROOM, AGENT)]
    assert [d.created_at for d in world.livekit.dispatches(ROOM)] == [T0 + 60]


async def test_a_room_as_warden_knows_it_gets_no_line_in_its_log(world: World) -> None:
    await world.person_joins(ROOM)
    await world.agent_joins(ROOM, "agent-1")
    logged = await world.timeline(ROOM)
    await world.wait(120)  # four looks, each finding what Warden knows
    assert await world.timeline(ROOM) == logged


async def test_a_room_whose_look_cannot_be_recorded_leaves_the_other_rooms_reconciled(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    """LiveKit lists a room whose name no database column holds (over 256 characters) before one whose
    webhooks were lost: the first is passed over (logged), and every run still adopts and looks at the
    others instead of stopping at it."""
    unstorable = "call-" + "x" * 300
    world.livekit.join(unstorable, "bob")
    world.livekit.join(ROOM, "alice")  # every webhook of the room was lost
    await world.wait(10)  # reconciliation at 10 s
    assert await world.phase(ROOM) == "waiting" and await world.phase(unstorable) == ""
    assert f"room {unstorable} passed over in this run: UnstorableEvent" in caplog.text
    world.livekit.leave(ROOM, "alice")  # and her participant_left was lost too
    await world.wait(30)
    assert await world.phase(ROOM) == "idle"  # the next run looked at it too

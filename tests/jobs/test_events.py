"""Events as LiveKit delivers them: twice, late, out of order; and timers that fire for a room that has
moved on. None of it may cause an action the room does not need."""

from __future__ import annotations

from pathlib import Path

from tests.support.helpers import agent, person
from tests.support.jobs_world import AGENT, World, jobs_world

ROOM = "call-42"


async def test_a_webhook_livekit_sends_twice_is_one_job(world: World) -> None:
    world.livekit.join(ROOM, "alice")
    assert await world.send("participant_joined", ROOM, event_id="EV_alice", participant=person("alice"))
    assert not await world.send("participant_joined", ROOM, event_id="EV_alice", participant=person("alice"))
    assert world.queue.refused == ["webhook:EV_alice"]
    assert (await world.timeline(ROOM)).count("participant_joined") == 1
    assert [job for job, _ in world.timers()] == ["deadline:RM_call-42:1"]


async def test_a_repeat_arriving_after_the_queue_forgot_the_event_changes_nothing(tmp_path: Path) -> None:
    async with jobs_world(tmp_path, crons=()) as world:  # an hour of sweeps would cost seconds
        await _repeat_after_an_hour(world)


async def _repeat_after_an_hour(world: World) -> None:
    world.livekit.join(ROOM, "alice")
    await world.send("participant_joined", ROOM, event_id="EV_alice", participant=person("alice"))
    await world.agent_joins(ROOM, "agent-1")
    await world.wait(3600)  # ARQ keeps a job's result (and so refuses its id) for an hour
    created = world.clock.now - 3600
    assert await world.send(
        "participant_joined", ROOM, event_id="EV_alice", created_at=created, participant=person("alice")
    )
    assert world.outcomes[-1] == ("webhook:EV_alice", "duplicate")
    assert world.timers() == [] and world.livekit.dispatched == []
    assert (await world.timeline(ROOM)).count("participant_joined") == 2  # alice and the agent, once each


async def test_webhooks_out_of_order_and_repeated_cause_no_action(world: World) -> None:
    world.livekit.join(ROOM, "alice")
    world.livekit.join(ROOM, "agent-1", agent_name=AGENT)
    t = world.clock.now
    joined = agent("agent-1", AGENT)
    await world.send("participant_joined", ROOM, event_id="EV_agent", created_at=t + 2, participant=joined)
    await world.send(
        "participant_joined", ROOM, event_id="EV_alice", created_at=t, participant=person("alice")
    )
    await world.send("participant_joined", ROOM, event_id="EV_agent", created_at=t + 2, participant=joined)
    await world.send(
        "participant_joined", ROOM, event_id="EV_alice", created_at=t, participant=person("alice")
    )
    assert await world.phase(ROOM) == "agent_present"
    await world.wait(60)
    assert world.livekit.looked == [] and world.livekit.dispatched == []


async def test_a_join_arriving_after_the_leave_is_put_in_its_place(world: World) -> None:
    await world.person_joins(ROOM)
    t = world.clock.now
    world.livekit.join(ROOM, "agent-1", agent_name=AGENT)
    world.livekit.leave(ROOM, "agent-1")
    await world.send("participant_left", ROOM, created_at=t + 5, participant=agent("agent-1", AGENT))
    await world.send("participant_joined", ROOM, created_at=t + 1, participant=agent("agent-1", AGENT))
    assert await world.phase(ROOM) == "agent_lost"  # joined, then left: not back
    assert ("deadline:RM_call-42:2", 25.0) in world.timers()  # the rejoin SLA from when it left
    await world.wait(24.9)
    assert world.livekit.dispatched == []
    await world.wait(0.1)
    assert world.livekit.dispatched == [(ROOM, AGENT)]


async def test_a_deadline_firing_after_the_agent_came_is_stale(world: World) -> None:
    await world.person_joins(ROOM)
    await world.wait(14)
    await world.agent_joins(ROOM, "agent-1")
    await world.wait(1)
    assert ("deadline:RM_call-42:1", "stale") in world.outcomes
    assert world.livekit.looked == [] and world.livekit.dispatched == []


async def test_a_timer_queued_again_by_the_sweep_while_it_waits_is_one_job(world: World) -> None:
    await world.person_joins(ROOM)
    world.agent_down()
    world.livekit.fail("observe", times=3)  # the deadline job keeps backing off: overdue for the sweep
    await world.wait(30)
    assert "deadline:RM_call-42:1" in world.queue.refused  # the sweep found it overdue, and queued already
    assert world.livekit.dispatched == [(ROOM, AGENT)]

"""Operators in control (issue 28) through the worker's jobs, in their in-memory world: an acknowledged
outage sends its acknowledgement on the routes that take it and no follow-up after it; a restart asked
for by hand waits out the deployment's cooldown and is called once; a re-dispatch asked for by hand brings
a failed room its agent, in its timeline with who asked, and is not made while the agent is there."""

from __future__ import annotations

from tests.support.jobs_world import AGENT, DEPLOYMENT, JOIN_AFTER, World
from workers.queue.jobs import ACK, REDISPATCH, RESTART, queue_operator_action
from workers.store.incidents import get_incident
from workers.store.queries import find_room

ROOM = "call-42"


async def asks(world: World, action: str, target: str, by: str = "alice", agent: str = "") -> bool:
    """An operator's request, queued as the web queues it, then everything due run."""
    queued = await queue_operator_action(world.queue, action, target, by, world.clock.now, agent)
    await world.run()
    return queued


async def failed_room(world: World) -> str:
    """A room whose re-dispatches ran out while the deployment is down, which its restart does not
    bring back: its incident's id."""
    world.agent_down()
    world.cloud.on_restart = None
    await world.person_joins(ROOM)
    await world.wait(60)
    (incident,) = await world.incidents()
    return incident.id


async def test_an_acknowledged_incident_is_said_once_and_its_follow_up_sent_to_nobody(world: World) -> None:
    incident_id = await failed_room(world)
    assert await asks(world, ACK, incident_id)
    assert world.webhook.said() == ["opened", "restarted", "acknowledged"]
    await asks(world, ACK, incident_id, by="bob")  # a second acknowledgement changes nothing
    found = await get_incident(world.engine, incident_id)
    assert found is not None and found.acknowledged_by == "alice" and found.acknowledged_at is not None
    await world.wait(150)  # the room fails again after the restart: a follow-up, to nobody
    found = await get_incident(world.engine, incident_id)
    assert found is not None and ("follow-up", "no alert: acknowledged by alice") in [
        (action, outcome) for _, action, outcome, _ in found.actions
    ]
    assert world.webhook.said() == ["opened", "restarted", "acknowledged"]
    assert world.alerts.steps() == [":rotating_light:"]
    assert ("acknowledged", "by alice") in [(a, o) for _, a, o, _ in found.actions]


async def test_a_restart_asked_for_by_hand_waits_out_the_cooldown_then_restarts_once(world: World) -> None:
    incident_id = await failed_room(world)
    assert world.cloud.restarts == [DEPLOYMENT]
    await asks(world, RESTART, incident_id)  # within WARDEN_RESTART_COOLDOWN_SECONDS (300): refused
    assert world.cloud.restarts == [DEPLOYMENT]
    await world.wait(300)
    await asks(world, RESTART, incident_id, by="bob")
    assert world.cloud.restarts == [DEPLOYMENT] * 2
    found = await get_incident(world.engine, incident_id)
    assert found is not None
    lines = [(a, o) for _, a, o, _ in found.actions if a == "restart"]
    assert lines[0][1].startswith("asked by alice: refused: its deployment's cooldown runs")
    assert lines[1] == ("restart", "asked by bob")


async def test_a_redispatch_asked_for_by_hand_brings_a_failed_room_its_agent_once(world: World) -> None:
    await failed_room(world)
    await world.wait(150)  # the fresh start after the restart failed too
    assert await world.phase(ROOM) == "waiting"
    dispatched = len(world.livekit.dispatched)
    world.down.discard(AGENT)  # the operator fixed the deployment by hand
    assert await asks(world, REDISPATCH, ROOM, agent=AGENT)
    assert len(world.livekit.dispatched) == dispatched + 1
    assert len(world.livekit.dispatches(ROOM, AGENT)) == 1  # the stale dispatches deleted first
    await world.wait(JOIN_AFTER)
    assert await world.phase(ROOM) == "agent_active"
    found = await find_room(world.engine, ROOM)
    assert found is not None
    (asked,) = [e for e in found.timeline if e.name == "redispatch_asked"]
    assert asked.data["fact"]["by"] == "alice" and asked.data["fact"]["agent"] == AGENT
    await asks(world, REDISPATCH, ROOM, agent=AGENT)  # the agent is there: nothing is done
    assert len(world.livekit.dispatched) == dispatched + 1

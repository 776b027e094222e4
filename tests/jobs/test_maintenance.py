"""Maintenance windows as those on call live them: an outage of an agent being deployed restarts
nothing and pages no one, the rooms are still re-dispatched and the incident recorded "in maintenance";
when the window ends (early, or in time) with the outage still there, escalation proceeds as if it had
just been seen: one restart, the alerts. The worker's jobs and escalation in their in-memory world."""

from __future__ import annotations

from pathlib import Path

from tests.support.jobs_world import AGENT, DEPLOYMENT, JOIN_AFTER, World, jobs_world
from workers.store import maintenance

ROOMS = ["call-1", "call-2", "call-3"]
GRACE = 20.0  # WARDEN_RESTART_GRACE_SECONDS
SWEEP = 5.0  # WARDEN_SWEEP_SECONDS


async def outage(world: World) -> None:
    world.agent_down()
    for room in ROOMS:  # WARDEN_OUTAGE_ROOMS=3 within the window: an outage at 15 s
        await world.person_joins(room)
    await world.wait(15)


def notes(incident: object) -> list[str]:
    return [f"{action}: {outcome}" for _, action, outcome, _ in incident.actions]  # type: ignore[attr-defined]


async def test_an_outage_in_a_window_restarts_nothing_and_ending_it_brings_one_restart_and_the_alerts(
    world: World,
) -> None:
    window = await maintenance.start(world.engine, AGENT, 3600, "deploying v2", "alice", world.clock())
    await outage(world)
    await world.wait(60)  # every room's re-dispatches used up: failed rooms, still nothing
    (incident,) = await world.incidents()
    assert incident.maintenance and incident.resolved_at is None
    assert world.cloud.restarts == [] and world.alerts.sent == [] and world.webhook.said() == []
    assert len(world.livekit.dispatched) == 6  # re-dispatch goes on: each room twice
    assert f"maintenance: {window.said()}: no restart, rollback or deploy hook, no alert" in notes(incident)
    assert (
        window.said() == "maintenance window 1 over agent notetaker until 23:13 UTC, by alice: deploying v2"
    )

    assert await maintenance.end(world.engine, window.id, world.clock()) != "unknown"
    await world.wait(SWEEP)  # no webhook needed: the sweep finds the window over
    assert world.cloud.restarts == [DEPLOYMENT]
    assert world.alerts.steps() == [":rotating_light:"] and world.webhook.said() == ["opened", "restarted"]
    (incident,) = await world.incidents()
    assert not incident.maintenance and "maintenance: ended; 3 room(s) still wait: escalating" in notes(
        incident
    )
    await world.wait(GRACE + JOIN_AFTER)
    (incident,) = await world.incidents()
    assert incident.resolved_at is not None and world.cloud.restarts == [DEPLOYMENT]
    assert world.webhook.said() == ["opened", "restarted", "resolved"]


async def test_every_agents_window_started_during_the_outage_counts_from_the_next_decision(
    tmp_path: Path,
) -> None:
    async with jobs_world(tmp_path, cloud=False, hook=True, warden_outage_rooms=4) as world:
        world.agent_down()
        for room in ROOMS:
            await world.person_joins(room)
        await world.wait(14)
        # the operator starts a window over every agent (`*`) a second before the outage is seen
        await maintenance.start(world.engine, "*", 120, "", "bob", world.clock())
        await world.wait(47)  # rooms fail one by one: the incident opens, quietly
        (incident,) = await world.incidents()
        assert incident.maintenance and world.hook.restarts == [] and world.alerts.sent == []
        await world.wait(120 - 47 + SWEEP)  # the window runs out: the next sweep escalates
        assert [agent for agent, *_ in world.hook.restarts] == [AGENT]
        assert world.alerts.steps() == [":rotating_light:"]


async def test_an_outage_ending_inside_the_window_is_resolved_without_a_word(world: World) -> None:
    await maintenance.start(world.engine, AGENT, 600, "", "alice", world.clock())
    await outage(world)
    world.down.discard(AGENT)  # the deploy finishes: the next re-dispatches are answered
    await world.wait(30)
    (incident,) = await world.incidents()
    assert incident.resolved_at is not None and incident.maintenance
    await world.wait(600)
    assert world.cloud.restarts == [] and world.alerts.sent == [] and world.webhook.said() == []

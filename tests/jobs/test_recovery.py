"""Recovery, as the people in a room live it: the worker's room jobs in their in-memory world
(`tests.support.jobs_world`), time moved by the test. Mirrors `tests/component/test_recovery.py`, which
drives the same jobs through the real LiveKit client, Redis and a database server."""

from __future__ import annotations

from pathlib import Path

from tests.support.jobs_world import AGENT, JOIN_AFTER, T0, World, jobs_world

ROOM = "call-42"
METADATA = '{"language": "de"}'


async def test_an_agent_in_time_means_nothing_happens(world: World) -> None:
    await world.person_joins(ROOM)
    assert world.timers() == [("deadline:RM_call-42:1", 15.0)]
    await world.wait(4)
    await world.agent_joins(ROOM, "agent-1")
    await world.wait(120)
    assert world.livekit.dispatched == [] and world.livekit.looked == []
    assert await world.phase(ROOM) == "agent_present"


async def test_an_agent_that_never_joins_is_re_dispatched_once_with_its_metadata_then_left_alone(
    world: World,
) -> None:
    app_dispatch = world.livekit.app_dispatch(ROOM, AGENT, metadata=METADATA)  # no agent takes it
    await world.person_joins(ROOM)
    await world.wait(14.9)
    assert world.livekit.dispatched == []  # not before the join SLA
    await world.wait(0.1)
    assert world.livekit.dispatched == [(ROOM, AGENT)]
    assert world.livekit.withdrawn == [(ROOM, app_dispatch.id)]
    assert [d.metadata for d in world.livekit.dispatches(ROOM)] == [METADATA]
    await world.wait(JOIN_AFTER)
    assert world.livekit.agents_in(ROOM) != [] and await world.phase(ROOM) == "agent_active"
    await world.wait(90)  # the confirm deadline passes with the agent there: nothing more
    assert world.livekit.dispatched == [(ROOM, AGENT)] and world.timers() == []


async def test_an_agent_that_leaves_early_is_replaced_after_the_rejoin_deadline(world: World) -> None:
    await world.person_joins(ROOM)
    await world.agent_joins(ROOM, "agent-1")
    await world.wait(60)
    await world.agent_leaves(ROOM, "agent-1")  # crashed; the person stays
    assert await world.phase(ROOM) == "agent_lost"
    assert [due for _, due in world.timers()] == [20.0]
    await world.wait(19.9)
    assert world.livekit.dispatched == []
    await world.wait(0.1 + JOIN_AFTER)
    assert world.livekit.dispatched == [(ROOM, AGENT)] and len(world.livekit.agents_in(ROOM)) == 1
    await world.wait(90)
    assert world.livekit.dispatched == [(ROOM, AGENT)]


async def test_livekits_own_replacement_arriving_first_means_no_redispatch(world: World) -> None:
    await world.person_joins(ROOM)
    await world.agent_joins(ROOM, "agent-1")
    await world.agent_leaves(ROOM, "agent-1")
    await world.wait(15)  # LiveKit re-dispatches a crashed agent after about 15 s
    await world.agent_joins(ROOM, "agent-2")
    await world.wait(90)
    assert world.livekit.dispatched == [] and world.livekit.looked == []


async def test_an_agent_leaving_after_everyone_else_changes_nothing(world: World) -> None:
    await world.person_joins(ROOM)
    await world.agent_joins(ROOM, "agent-1")
    await world.person_leaves(ROOM)
    await world.agent_leaves(ROOM, "agent-1")
    assert await world.phase(ROOM) == "idle"
    await world.wait(90)
    assert world.livekit.looked == [] and world.livekit.dispatched == []


async def test_a_stalled_agent_is_evicted_and_replaced(tmp_path: Path) -> None:
    async with jobs_world(tmp_path, warden_active_sla_seconds=10) as world:
        await world.person_joins(ROOM)
        await world.agent_joins(ROOM, "agent-1")  # joins, but never publishes a track nor says it works
        await world.wait(9.9)
        assert world.livekit.evicted == []
        await world.wait(0.1)
        assert world.livekit.evicted == [(ROOM, "agent-1")]
        assert world.livekit.dispatched == [(ROOM, AGENT)]
        await world.wait(JOIN_AFTER)  # the new agent comes and publishes
        assert await world.phase(ROOM) == "agent_active"
        await world.wait(90)
        assert world.livekit.evicted == [(ROOM, "agent-1")] and world.livekit.dispatched == [(ROOM, AGENT)]


async def test_a_heartbeat_keeps_an_agent_from_counting_as_stalled(tmp_path: Path) -> None:
    async with jobs_world(tmp_path, warden_active_sla_seconds=10) as world:
        await world.person_joins(ROOM)
        await world.agent_joins(ROOM, "agent-1")
        await world.wait(5)
        await world.heartbeat(ROOM, "agent-1")
        assert await world.phase(ROOM) == "agent_active"
        await world.wait(90)
        assert world.livekit.evicted == [] and world.livekit.dispatched == []


async def test_a_room_that_ended_is_not_re_dispatched(world: World) -> None:
    await world.person_joins(ROOM)
    await world.wait(5)
    await world.room_ends(ROOM)
    await world.wait(90)
    assert world.livekit.dispatched == [] and world.livekit.looked == []
    assert await world.phase(ROOM) == "closed"


async def test_a_room_that_ended_unannounced_is_closed_when_its_deadline_asks_not_re_dispatched(
    world: World,
) -> None:
    await world.person_joins(ROOM)
    world.livekit.close(ROOM)  # its room_finished never arrives
    await world.wait(15)
    assert world.livekit.looked == [ROOM] and world.livekit.dispatched == []
    assert await world.phase(ROOM) == "closed"


async def test_livekit_unavailable_is_retried_until_it_answers_and_one_agent_is_dispatched(
    world: World,
) -> None:
    world.agent_down()  # no agent comes: the retries find only the dispatch they made
    await world.person_joins(ROOM)
    world.livekit.fail("observe", times=2)
    world.livekit.fail("redispatch", landed=True)  # the dispatch is made, its answer lost
    await world.wait(15)
    assert world.livekit.dispatched == []  # the deadline job backs off: 1 s, 2 s, 4 s
    await world.wait(7)
    assert world.livekit.dispatched == [(ROOM, AGENT)] and len(world.livekit.dispatches(ROOM)) == 1
    tries = [outcome for job, outcome in world.outcomes if job == "deadline:RM_call-42:1"]
    assert tries == ["retry", "retry", "retry", "none"]


async def test_livekit_refusing_is_recorded_and_escalated_not_retried(world: World) -> None:
    await world.person_joins(ROOM)
    world.livekit.fail("observe", refused=True)
    await world.wait(15)
    assert world.livekit.dispatched == []
    assert [outcome for job, outcome in world.outcomes if job.startswith("deadline:")] == ["failed"]
    assert "upstream_failed" in await world.timeline(ROOM)
    (incident,) = await world.incidents()
    assert [sid for sid, *_ in incident.rooms] == ["RM_call-42"]


async def test_a_lost_timer_still_fires_through_the_sweep(world: World) -> None:
    await world.person_joins(ROOM)
    world.queue.drop("deadline:RM_call-42:1")  # say, Redis restarted without persistence
    await world.wait(19.9)
    assert world.livekit.dispatched == []
    await world.wait(0.1)  # the sweep (every 5 s) takes deadlines 2 s overdue
    assert world.livekit.dispatched == [(ROOM, AGENT)]
    assert [d.created_at for d in world.livekit.dispatches(ROOM)] == [T0 + 20]


async def test_dispatch_on_start_dispatches_the_agent_once(tmp_path: Path) -> None:
    async with jobs_world(tmp_path, warden_dispatch_on_start=True) as world:
        await world.person_joins(ROOM)
        await world.person_joins(ROOM, "bob")
        assert world.livekit.dispatched == [(ROOM, AGENT)]
        await world.wait(90)
        assert world.livekit.dispatched == [(ROOM, AGENT)] and await world.phase(ROOM) == "agent_active"

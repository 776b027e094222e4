"""Recovery in bulk (issue 30): once a restarted agent's deployment is back, its waiting rooms are
re-checked and re-dispatched in batches (`workers.jobs.rooms.bulk`), as the escalation's comeback does
when LiveKit Cloud reports running replicas. Every room gets its agent once, every decision is in its
timeline, and a batch that dies at any point leaves every room to be recovered once, by its own job."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.exc import OperationalError

from tests.support.dying import Died, dies_half_way
from tests.support.jobs_world import AGENT, JOIN_AFTER, World, jobs_world
from workers.jobs.rooms import bulk

ROOMS = [f"call-{i}" for i in range(12)]
GRACE = 20.0  # WARDEN_RESTART_GRACE_SECONDS


async def outage(world: World) -> tuple[str, list[tuple[str, str]]]:
    """Every room waits for an agent whose deployment is down, until the outage's restart: the incident's
    id and its rooms, each of them with its grace deadline queued."""
    world.agent_down()
    hold_due = world.queue.hold_due
    # the rooms' deadlines fall due in the same second: here each job does its own room, as it would
    # with no other to take (tests/jobs/test_deadline_burst.py serves such a burst in batches)
    world.queue.hold_due = no_burst  # type: ignore[method-assign]
    for room in ROOMS:
        await world.person_joins(room)
    await world.wait(15)
    world.queue.hold_due = hold_due  # type: ignore[method-assign]
    (incident,) = await world.incidents()
    assert world.cloud.restarts and len(incident.rooms) == len(ROOMS)
    return incident.id, [(sid, name) for sid, name, *_ in incident.rooms]


async def no_burst(prefix: str, limit: int, seconds: float) -> list[str]:
    return []


def copies(world: World) -> Counter[str]:
    """How many of the agent's copies each room has now."""
    return Counter({room: len(world.livekit.agents_in(room)) for room in ROOMS})


async def test_rooms_back_together_are_asked_about_in_one_batch_and_each_redispatched_once(
    world: World,
) -> None:
    incident, rooms = await outage(world)
    before = Counter(room for room, _ in world.livekit.dispatched)
    await bulk.fresh_starts(world.ctx, rooms, incident, AGENT, 0.0)
    (together,) = world.livekit.observed_together  # one ListRooms for the batch, then each room's look
    assert sorted(together) == sorted(ROOMS)
    after = Counter(room for room, _ in world.livekit.dispatched)
    # each re-dispatched once, at once; those the outage's first breaches re-dispatched a moment ago
    # have that dispatch given its few seconds first, as their own deadline jobs would decide
    assert after - before == Counter(room for room in ROOMS if room not in before)
    timeline = await world.timeline(next(room for room in ROOMS if room not in before))
    tail = timeline[timeline.index("agent_restarted", len(timeline) - 8) :]
    assert [e for e in tail if e[0].islower()] == [
        "agent_restarted",
        "deadline_passed",
        "presence_observed",
        "agent_dispatched",
    ]  # each decision in the room's timeline, as its own job would have recorded it
    assert world.queue.held == {}  # every deadline job let go
    await world.wait(JOIN_AFTER + GRACE)  # the agents come; the grace's timers find nothing to do
    assert copies(world) == Counter(dict.fromkeys(ROOMS, 1))
    assert all(len(world.livekit.dispatches(room, AGENT)) == 1 for room in ROOMS)  # never two live
    later = Counter(room for room, _ in world.livekit.dispatched) - after
    assert not set(later) - set(before)  # the batch's rooms needed nothing more
    assert all(i.resolved_at is not None for i in await world.incidents())


async def test_while_the_batch_works_on_a_room_its_deadline_job_is_refused(world: World) -> None:
    """Single-flight: while the batch works on a room, that room's deadline job (the sweep's, or its
    fresh start's own notice) is refused, as a job queued or running is."""
    incident, rooms = await outage(world)
    mine = world.livekit.observe_many

    async def sweep_meanwhile(names: list[str], at_once: int) -> list[object]:
        assert await world.queue.enqueue("on_deadline", next(iter(world.queue.held)), "x", 0) is False
        return await mine(names, at_once)  # type: ignore[return-value]

    world.livekit.observe_many = sweep_meanwhile  # type: ignore[method-assign,assignment]
    await bulk.fresh_starts(world.ctx, rooms, incident, AGENT, 0.0)
    await world.wait(JOIN_AFTER + GRACE)
    assert copies(world) == Counter(dict.fromkeys(ROOMS, 1))


async def test_a_room_livekit_fails_for_goes_its_own_way_and_is_recovered(world: World) -> None:
    incident, rooms = await outage(world)
    world.livekit.fail("observe")  # the first room's look: LiveKit unavailable
    await bulk.fresh_starts(world.ctx, rooms, incident, AGENT, 0.0)
    await world.wait(JOIN_AFTER + 1)  # its own job asked again a second later
    assert sum(copies(world).values()) == len(ROOMS) - 3  # (the first three wait for their dispatch)
    await world.wait(10)
    assert copies(world) == Counter(dict.fromkeys(ROOMS, 1))


@pytest.mark.parametrize("where", ["asking LiveKit", "after some dispatches"])
async def test_a_batch_that_dies_half_way_leaves_every_room_recovered_once(
    tmp_path: Path, where: str
) -> None:
    async with jobs_world(tmp_path) as world:
        incident, rooms = await outage(world)
        livekit = world.livekit
        with dies_half_way(world, where), pytest.raises(Died):
            await bulk.fresh_starts(world.ctx, rooms, incident, AGENT, 0.0)
        await world.wait(60)  # the holds run out (35 s); the sweep queues what is due, the agents come
        assert copies(world) == Counter(dict.fromkeys(ROOMS, 1))
        assert all(len(livekit.dispatches(room, AGENT)) == 1 for room in ROOMS)  # never two live ones
        assert all(i.resolved_at is not None for i in await world.incidents())


async def test_a_single_room_back_goes_the_per_room_way(world: World) -> None:
    incident, rooms = await outage(world)
    sid, name = next((sid, name) for sid, name in rooms if name not in dict(world.livekit.dispatched))
    await bulk.fresh_starts(world.ctx, [(sid, name)], incident, AGENT, 0.0)
    assert world.livekit.observed_together == []  # its own deadline job, queued at once
    await world.wait(JOIN_AFTER)
    assert len(world.livekit.agents_in(name)) == 1


async def test_a_batch_that_fails_leaves_the_others_going_and_sends_its_rooms_their_own_way(
    world: World, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    incident, rooms = await outage(world)
    monkeypatch.setattr(bulk, "BATCH", 4)  # three batches: two at once, then the third
    real, reads = bulk.load_rooms, 0

    async def load_rooms(*args: Any, **kwargs: Any) -> Any:
        nonlocal reads
        reads += 1
        if reads == 1:  # the first batch's read: the database unavailable for a moment
            raise OperationalError("SELECT", {}, ConnectionError("gone"))
        return await real(*args, **kwargs)

    monkeypatch.setattr(bulk, "load_rooms", load_rooms)
    await bulk.fresh_starts(world.ctx, rooms, incident, AGENT, 0.0)
    assert len(world.livekit.observed_together) == 2  # the two other batches served
    assert "recovery in bulk: a batch of 4 room(s) failed (OperationalError)" in caplog.text
    # the failed batch's rooms by their own jobs (those re-dispatched in the outage given that dispatch's
    # few seconds first), long before the grace's end
    await world.wait(JOIN_AFTER + 8)
    assert copies(world) == Counter(dict.fromkeys(ROOMS, 1))


async def test_a_room_failing_in_a_batch_leaves_every_room_on_its_fastest_way(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    incident, rooms = await outage(world)
    waiting = [room for room in ROOMS if room not in dict(world.livekit.dispatched)]
    real, failing = world.livekit.redispatch, waiting[0]

    async def redispatch(room: str, *args: Any, **kwargs: Any) -> str:
        if room == failing:
            raise RuntimeError("a bug, say")
        return await real(room, *args, **kwargs)

    world.livekit.redispatch = redispatch  # type: ignore[method-assign]
    await bulk.fresh_starts(world.ctx, rooms, incident, AGENT, 0.0)
    world.livekit.redispatch = real  # type: ignore[method-assign]
    await world.run()  # its deadline job, queued at once (not at the sweep's next look)
    assert Counter(room for room, _ in world.livekit.dispatched if room in waiting) == Counter(waiting)
    assert f"batch: room {failing} left to its own job (RuntimeError)" in caplog.text
    await world.wait(JOIN_AFTER + GRACE)
    assert copies(world) == Counter(dict.fromkeys(ROOMS, 1))
    assert all(len(world.livekit.dispatches(room, AGENT)) == 1 for room in ROOMS)

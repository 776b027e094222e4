"""A burst of deadlines (issue 30): rooms whose SLAs end in the same second are served in batches
(`workers.jobs.rooms.burst`): the first deadline job to find its room without its agent takes the others
due with it out of the queue and does their work together. Every room gets its agent once, every decision
is in its timeline, and a batch that dies at any point leaves every room to be recovered once."""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.support.dying import Died, dies_half_way
from tests.support.jobs_world import JOIN_AFTER, World, jobs_world
from workers.core.errors import UpstreamError

ROOMS = [f"burst-{i}" for i in range(12)]
LEADER = "burst-0"  # its deadline job comes first in the queue's order (ids sort so)
SLA = 15.0  # WARDEN_JOIN_SLA_SECONDS


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    # no outage: the rooms' agent is there, only never dispatched to them; one breach is not an outage
    async with jobs_world(tmp_path, cloud=False, warden_outage_rooms=100) as ready:
        yield ready


async def people_arrive(world: World) -> None:
    """A person joins each room in the same second; no agent is dispatched to any of them."""
    for room in ROOMS:
        await world.person_joins(room)
    assert {due for _, due in world.timers()} == {SLA}  # their deadlines fall due together


def copies(world: World) -> Counter[str]:
    return Counter({room: len(world.livekit.agents_in(room)) for room in ROOMS})


def deadline_jobs_run(world: World, attempt: int = 1) -> list[str]:
    return [job for job, _ in world.outcomes if job.startswith("deadline:") and job.endswith(f":{attempt}")]


async def test_deadlines_due_together_are_served_in_one_batch_each_room_redispatched_once(
    world: World,
) -> None:
    await people_arrive(world)
    await world.wait(SLA)
    (together,) = world.livekit.observed_together  # one ListRooms for the others, then each room's look
    assert sorted(together) == sorted(set(ROOMS) - {LEADER})
    assert Counter(room for room, _ in world.livekit.dispatched) == Counter(ROOMS)  # each once, at once
    assert deadline_jobs_run(world) == [f"deadline:RM_{LEADER}:1"]  # the others' work done by the batch
    assert world.queue.held == {}  # every deadline job let go
    events = [e for e in await world.timeline("burst-7") if e.islower()]  # (actions are CamelCase)
    assert events[-3:] == ["deadline_passed", "presence_observed", "agent_dispatched"]  # as its job's
    await world.wait(JOIN_AFTER + SLA)  # the agents come; the next deadlines find nothing to do
    assert copies(world) == Counter(dict.fromkeys(ROOMS, 1))
    assert all(len(world.livekit.dispatches(room, "notetaker")) == 1 for room in ROOMS)
    assert [await world.phase(room) for room in ROOMS] == ["agent_active"] * len(ROOMS)


async def test_while_the_batch_works_on_a_room_its_deadline_job_is_refused(world: World) -> None:
    """Single-flight: while the batch works on a room, that room's deadline job (queued by the sweep,
    say) is refused, as a job queued or running is."""
    await people_arrive(world)
    mine, refused = world.livekit.observe_many, []

    async def sweep_meanwhile(names: list[str], at_once: int) -> list[object]:
        for name in names:
            refused.append(await world.queue.enqueue("on_deadline", f"deadline:RM_{name}:1", f"RM_{name}", 1))
        return await mine(names, at_once)  # type: ignore[return-value]

    world.livekit.observe_many = sweep_meanwhile  # type: ignore[method-assign,assignment]
    await world.wait(SLA + JOIN_AFTER)
    assert refused == [False] * (len(ROOMS) - 1)
    assert copies(world) == Counter(dict.fromkeys(ROOMS, 1))


async def test_a_room_livekit_fails_for_goes_back_to_its_own_job_and_is_recovered(world: World) -> None:
    await people_arrive(world)
    mine = world.livekit.observe_many

    async def one_unavailable(names: list[str], at_once: int) -> list[object]:
        seen: list[object] = list(await mine(names, at_once))
        seen[names.index("burst-5")] = UpstreamError("LiveKit unavailable", retryable=True)
        return seen

    world.livekit.observe_many = one_unavailable  # type: ignore[method-assign,assignment]
    await world.wait(SLA)
    (together,) = world.livekit.observed_together
    assert "burst-5" in together and "deadline:RM_burst-5:1" in deadline_jobs_run(
        world
    )  # queued again at once, it asked alone
    assert Counter(room for room, _ in world.livekit.dispatched) == Counter(ROOMS)
    await world.wait(JOIN_AFTER)
    assert copies(world) == Counter(dict.fromkeys(ROOMS, 1))


@pytest.mark.parametrize("where", ["asking LiveKit", "after some dispatches"])
async def test_a_batch_that_dies_half_way_leaves_every_room_recovered_once(
    tmp_path: Path, where: str
) -> None:
    async with jobs_world(tmp_path, cloud=False, warden_outage_rooms=100) as world:
        await people_arrive(world)
        livekit, queue = world.livekit, world.queue
        with dies_half_way(world, where), pytest.raises(Died):
            await world.wait(SLA)
        assert queue.held  # the dead batch's holds, left to run out
        for job in list(queue.running.values()):  # the leader's own job died with it: ARQ runs it again
            queue.retry(job, 40)  # once its claim has run out
        await world.restart_worker()
        await world.wait(60)  # the holds run out (35 s); the sweep queues what is due, the agents come
        assert copies(world) == Counter(dict.fromkeys(ROOMS, 1))
        assert all(len(livekit.dispatches(room, "notetaker")) == 1 for room in ROOMS)  # never two live


async def test_a_batch_cancelled_half_way_gives_its_rooms_back_at_once(world: World) -> None:
    # the leading job's own timeout, or the worker shutting down, cancels the batch while it asks LiveKit:
    # its rooms go back to their own jobs then, not when their holds run out (half a minute later)
    await people_arrive(world)
    mine, cancelled = world.livekit.observe_many, []

    async def cancelled_once(names: list[str], at_once: int) -> list[object]:
        if not cancelled:
            cancelled.append(names)
            raise asyncio.CancelledError
        return list(await mine(names, at_once))

    world.livekit.observe_many = cancelled_once  # type: ignore[method-assign,assignment]
    with contextlib.suppress(asyncio.CancelledError):
        await world.wait(SLA)
    await world.wait(1)
    assert cancelled and world.queue.held == {}  # every hold given up at once
    assert Counter(room for room, _ in world.livekit.dispatched) == Counter(ROOMS)  # by their own jobs
    await world.wait(JOIN_AFTER)
    assert copies(world) == Counter(dict.fromkeys(ROOMS, 1))

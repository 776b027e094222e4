"""The agent's own state (`lk.agent.state`, issue 26) through the worker's jobs: the liveness cron sees
it (no webhook does), a stuck agent is replaced with its dispatch's metadata and the replacement left
alone, a healthy one is never touched (its turns between listening, idle and speaking write nothing; a
turn into or out of thinking is recorded; a listing that was no news is news again once anything else
changed the room), and LiveKit sees a bounded number of calls a second."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from google.protobuf.message import DecodeError

from tests.support.helpers import person
from tests.support.jobs_world import AGENT, JOIN_AFTER, World, jobs_world
from workers.core.events import Participant

ROOM = "call-7"
CRONS = ("sweep", "liveness")


async def served(world: World, room: str = ROOM, identity: str = "notetaker-0") -> None:
    """Alice, and the agent serving the application's dispatch (metadata `{"lang": "fr"}`), publishing."""
    world.livekit.app_dispatch(room, AGENT, metadata='{"lang": "fr"}')
    await world.person_joins(room)
    await world.agent_joins(room, identity)
    await world.agent_publishes(room, identity)


async def first_look(world: World) -> float:
    """Wait for the next liveness look at the room (within its 15-s period); when it was."""
    since = world.clock.now
    await world.wait(15)
    return next(at for at, _ in world.livekit.asked if at > since)


async def test_an_agent_stuck_initializing_is_replaced_and_the_replacement_left_alone(tmp_path: Path) -> None:
    async with jobs_world(tmp_path, crons=CRONS, warden_liveness_seconds=15) as world:
        await served(world)
        world.livekit.set_state(ROOM, "notetaker-0", "initializing")
        seen_at = await first_look(world)  # initializing since then
        assert "reconciled" in await world.timeline(ROOM)
        await world.wait(seen_at + 30 - 0.1 - world.clock.now)
        assert world.livekit.evicted == []
        await world.wait(0.1)  # 30 s after Warden first saw it initializing
        assert world.livekit.evicted == [(ROOM, "notetaker-0")]
        assert world.livekit.dispatched == [(ROOM, AGENT)]
        (dispatch,) = world.livekit.dispatches(ROOM, AGENT)
        assert dispatch.metadata == '{"lang": "fr"}'
        await world.wait(JOIN_AFTER)
        (replacement,) = world.livekit.agents_in(ROOM)
        world.livekit.set_state(ROOM, replacement, "initializing")
        await world.wait(20)  # it is starting up: a clock of its own, from the look that saw it
        world.livekit.set_state(ROOM, replacement, "listening")
        await world.wait(300)
        assert world.livekit.evicted == [(ROOM, "notetaker-0")]
        assert world.livekit.dispatched == [(ROOM, AGENT)]
        timeline = await world.timeline(ROOM)
        assert timeline.count("Evict") == 1 and timeline.count("Redispatch") == 1


async def test_a_listening_agent_is_never_touched(tmp_path: Path) -> None:
    async with jobs_world(tmp_path, crons=CRONS, warden_liveness_seconds=15) as world:
        await served(world)
        world.livekit.set_state(ROOM, "notetaker-0", "listening")
        await world.wait(600)
        assert (world.livekit.evicted, world.livekit.dispatched) == ([], [])
        assert len(world.livekit.asked) >= 600 / 15 - 1  # looked at all along
        assert (await world.timeline(ROOM)).count("reconciled") == 1  # recorded once: the news


async def test_an_agent_stuck_thinking_for_a_minute_is_replaced(tmp_path: Path) -> None:
    async with jobs_world(tmp_path, crons=CRONS, warden_liveness_seconds=15) as world:
        await served(world)
        world.livekit.set_state(ROOM, "notetaker-0", "thinking")
        seen_at = await first_look(world)
        await world.wait(seen_at + 60 - 0.1 - world.clock.now)
        assert world.livekit.evicted == []
        await world.wait(0.1)
        assert world.livekit.evicted == [(ROOM, "notetaker-0")]


async def test_liveness_looks_are_bounded_in_calls_a_second_and_the_period_stretches(tmp_path: Path) -> None:
    async with jobs_world(
        tmp_path, crons=CRONS, warden_liveness_seconds=15, warden_liveness_calls_per_second=2
    ) as world:
        rooms = [f"call-{i}" for i in range(40)]
        for i, room in enumerate(rooms):
            await served(world, room, f"notetaker-{i}")
        world.livekit.asked.clear()
        await world.wait(60)
        per_second = Counter(int(at) for at, _ in world.livekit.asked)
        assert max(per_second.values()) <= 2
        looks = Counter(room for _, room in world.livekit.asked)
        assert set(looks) == set(rooms) and min(looks.values()) >= 2  # each every 20 s, not 15


async def test_liveness_0_turns_the_looks_off(tmp_path: Path) -> None:
    async with jobs_world(tmp_path, crons=CRONS, warden_liveness_seconds=0) as world:
        await served(world)
        world.livekit.set_state(ROOM, "notetaker-0", "initializing")
        await world.wait(120)
        assert (world.livekit.asked, world.livekit.evicted) == ([], [])


async def test_an_agents_ordinary_turns_write_nothing_and_a_turn_to_thinking_is_recorded(
    tmp_path: Path,
) -> None:
    async with jobs_world(tmp_path, crons=CRONS, warden_liveness_seconds=15) as world:
        await served(world)
        world.livekit.set_state(ROOM, "notetaker-0", "listening")
        await first_look(world)
        assert (await world.timeline(ROOM)).count("reconciled") == 1  # its first state: news
        for state in ("speaking", "listening", "idle", "speaking"):  # a conversation's turns
            world.livekit.set_state(ROOM, "notetaker-0", state)
            await first_look(world)
        assert (await world.timeline(ROOM)).count("reconciled") == 1  # seen, nothing written
        world.livekit.set_state(ROOM, "notetaker-0", "thinking")
        await first_look(world)
        assert (await world.timeline(ROOM)).count("reconciled") == 2  # the stuck clock starts: recorded
        world.livekit.set_state(ROOM, "notetaker-0", "speaking")
        await first_look(world)
        assert (await world.timeline(ROOM)).count("reconciled") == 3  # out of it: recorded too
        assert (world.livekit.evicted, world.livekit.dispatched) == ([], [])


async def test_a_listing_that_was_no_news_is_news_once_a_webhook_changed_the_room(tmp_path: Path) -> None:
    async with jobs_world(tmp_path, crons=CRONS, warden_liveness_seconds=15) as world:
        await served(world)
        world.livekit.set_state(ROOM, "notetaker-0", "listening")
        await first_look(world)
        await first_look(world)  # the same listing again: nothing written
        recorded = (await world.timeline(ROOM)).count("reconciled")
        # Bob's join webhook comes, but LiveKit never lists him (he left at once, his leave lost)
        await world.send("participant_joined", ROOM, participant=person("bob"))
        await first_look(world)
        await first_look(world)  # the same listing as before, of a room that changed since: bob is gone
        assert (await world.timeline(ROOM)).count("reconciled") == recorded + 1


async def test_a_room_whose_look_fails_leaves_the_other_looks_of_the_tick_counted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """LiveKit's answer about one room cannot be read (a proxy's page where its protobuf should be):
    that room's look is passed over (logged, counted), and the other look of the same tick is recorded
    and counted as before."""
    async with jobs_world(tmp_path, crons=CRONS, warden_liveness_seconds=1) as world:  # both each tick
        await served(world, "call-1", "notetaker-1")
        await served(world, "call-2", "notetaker-2")
        answer = world.livekit.participants

        async def participants(room: str) -> tuple[Participant, ...] | None:
            if room == "call-1":
                raise DecodeError("Error parsing message")
            return await answer(room)

        monkeypatch.setattr(world.livekit, "participants", participants)
        world.livekit.set_state("call-2", "notetaker-2", "thinking")
        await world.wait(1)
        assert (await world.timeline("call-2")).count("reconciled") == 1  # its agent's state: news
        ticks = [done for job, done in world.outcomes if job == "cron:liveness"]
        assert ticks[-1] == {"taken": 2, "looked": 1, "failed": 1}
        assert "room call-1 passed over in this run: DecodeError" in caplog.text

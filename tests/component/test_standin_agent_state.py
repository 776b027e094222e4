"""The stand-in LiveKit's agents publish their own state (`lk.agent.state`) as livekit-agents does: after
connecting, on every change, seen only by `ListParticipants` (never in a webhook); Warden's LiveKit
adapter reads it through the real livekit-api client, and keeps only the framework's five states."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest
from livekit.protocol.agent_dispatch import CreateAgentDispatchRequest
from livekit.protocol.room import RoomParticipantIdentity

from devtools.simulator.agent_states import HEALTHY, STUCK_THINKING
from devtools.simulator.clock import ManualClock
from devtools.simulator.livekit import FakeLiveKit
from devtools.simulator.plan import parse_failures
from devtools.simulator.scenarios import stuck_initializing
from devtools.simulator.serving import serve
from devtools.simulator.world import Simulation
from tests.support.settings import KEY, SECRET
from workers.adapters.livekit import LiveKitRooms

T0 = 1_767_225_600.0
EPS = 0.01


@pytest.fixture
async def standin() -> AsyncIterator[tuple[FakeLiveKit, ManualClock, LiveKitRooms]]:
    clock = ManualClock(T0)
    fake = FakeLiveKit(KEY, SECRET, clock=clock)
    async with serve(fake.app) as url:
        rooms = LiveKitRooms(url, KEY, SECRET, timeout=2.0)
        try:
            yield fake, clock, rooms
        finally:
            await rooms.aclose()


async def states(rooms: LiveKitRooms, room: str) -> dict[str, str]:
    listed = await rooms.participants(room)
    assert listed is not None
    return {p.identity: p.state for p in listed if p.is_agent}


async def test_a_workers_agents_play_their_state_sequences_one_per_job(
    standin: tuple[FakeLiveKit, ManualClock, LiveKitRooms],
) -> None:
    fake, clock, rooms = standin
    stuck_initializing(fake, "notetaker")  # its first agent stays initializing, the next listen
    fake.join("r", "alice")
    fake.create_dispatch("r", "notetaker")
    clock.now = T0 + 0.2 + 1.0 + EPS  # accepted at 0.2, connected at 1.2
    (first,) = fake.agents_in("r")
    assert await states(rooms, "r") == {first: "initializing"}
    clock.now = T0 + 600
    assert await states(rooms, "r") == {first: "initializing"}
    joined = [f for _, event, _, f in fake.webhooks if event == "participant_joined"]
    assert all("lk.agent.state" not in f["participant"].get("attributes", {}) for f in joined)
    fake.create_dispatch("r2", "notetaker")
    clock.now += 1.2 + EPS
    (second,) = fake.agents_in("r2")
    assert await states(rooms, "r2") == {second: "initializing"}
    clock.now += HEALTHY[-1][0]
    assert await states(rooms, "r2") == {second: "listening"}


async def test_an_agent_that_hangs_thinking_and_one_that_publishes_no_state(
    standin: tuple[FakeLiveKit, ManualClock, LiveKitRooms],
) -> None:
    fake, clock, rooms = standin
    fake.add_worker("assistant", states=(STUCK_THINKING,))
    fake.add_worker("transcriber")  # not on the framework: no state
    fake.join("r", "alice")
    fake.create_dispatch("r", "assistant")
    fake.create_dispatch("r", "transcriber")
    clock.now = T0 + 1.2 + STUCK_THINKING[-1][0] + EPS
    assert sorted((await states(rooms, "r")).values()) == ["", "thinking"]
    fake.set_state("r", fake.agents_in("r")[0], "daydreaming")  # not one of the framework's: unknown
    assert sorted((await states(rooms, "r")).values()) == ["", ""]


async def test_the_demos_stuck_agent_stays_initializing_and_its_replacement_listens(
    standin: tuple[FakeLiveKit, ManualClock, LiveKitRooms],
) -> None:
    """`make run`'s demo (`stuck:` in its failures): the room's first agent joins, publishes its audio and
    stays `initializing`; the one answering the next dispatch (Warden's) starts and listens."""
    fake, clock, rooms = standin
    async with httpx.AsyncClient(transport=httpx.MockTransport(lambda _: httpx.Response(200))) as client:
        sim = Simulation(fake, client, "http://warden/webhook", "demo-agent", parse_failures("stuck:1"))
        sim.agent_delay, sim.fates["r"] = (0.0, 0.0), "stuck"
        fake.join("r", "alice")
        fake.create_dispatch("r", "demo-agent")
        await asyncio.gather(*sim._tasks)
        (stuck,) = fake.agents_in("r")
        clock.now = T0 + 600
        assert await states(rooms, "r") == {stuck: "initializing"}
        assert fake.tracks[("r", stuck)]  # it published its audio: present and "active"
        fake._RemoveParticipant(RoomParticipantIdentity(room="r", identity=stuck))
        fake._CreateDispatch(CreateAgentDispatchRequest(room="r", agent_name="demo-agent"))  # Warden's
        await asyncio.gather(*sim._tasks)
        (replacement,) = fake.agents_in("r")
        clock.now += HEALTHY[-1][0] + EPS
        assert await states(rooms, "r") == {replacement: "listening"}

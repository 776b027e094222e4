"""Warden started from its Procfile (web, worker, release) against the stand-in LiveKit, whose agents
publish their own state (`lk.agent.state`, issue 26): an agent stuck `initializing` is removed and
replaced, and the replacement left alone; a `listening` agent is never touched. Short limits: stuck
after 3 s, a look at each room every second."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from devtools.simulator.agent_states import HEALTHY
from devtools.simulator.livekit import FakeLiveKit
from tests.support.settings import KEY, SECRET
from tests.support.waiting import wait_until
from tests.support.world import AGENT, World, warden_world

ENV = {
    "WARDEN_JOIN_SLA_SECONDS": "8",
    "WARDEN_SWEEP_SECONDS": "1",
    "WARDEN_STUCK_INITIALIZING_SECONDS": "3",
    "WARDEN_LIVENESS_SECONDS": "1",
}
LOOKS_AFTER = 8  # looks at a room, a second apart: well past the 3-s limit


@pytest.fixture
async def world(tmp_path: Path, redis_url: str) -> AsyncIterator[World]:
    async with warden_world(tmp_path, redis_url, FakeLiveKit(KEY, SECRET), answer=False, **ENV) as w:
        yield w


def looks(world: World, room: str) -> int:
    return world.fake.calls.count(("ListParticipants", room))


async def looked_again(world: World, room: str, times: int) -> None:
    """Wait until Warden has listed the room's participants `times` more times."""
    before = looks(world, room)

    async def enough() -> bool:
        return looks(world, room) >= before + times

    await wait_until(enough, f"{times} more looks at {room}")


async def test_an_agent_stuck_initializing_is_replaced_and_the_replacement_left_alone(world: World) -> None:
    world.stuck_initializing()
    await world.person_joins("s-stuck")
    first = world.fake.create_dispatch("s-stuck", AGENT, metadata='{"lang": "fr"}')

    async def replaced() -> bool:
        room = await world.room("s-stuck")
        states = [e["agent_state"] for e in room.get("expected", [])]
        return world.created("s-stuck") == 1 and states == ["listening"]

    await wait_until(replaced, "the stuck agent replaced by one that listens")
    assert world.fake.calls.count(("RemoveParticipant", "s-stuck")) == 1
    (live,) = world.fake.live_dispatches("s-stuck", AGENT)
    assert live.id != first.id and live.metadata == '{"lang": "fr"}'
    (replacement,) = world.fake.agents_in("s-stuck")
    room = await world.room("s-stuck")
    reasons = [e["detail"].get("reason") for e in room["timeline"] if e["type"] == "ScheduleDeadline"]
    assert "stuck_initializing" in reasons
    await looked_again(world, "s-stuck", LOOKS_AFTER)  # the replacement listens: left alone
    assert world.fake.calls.count(("RemoveParticipant", "s-stuck")) == 1 and world.created("s-stuck") == 1
    assert world.fake.agents_in("s-stuck") == [replacement]


async def test_a_listening_agent_is_never_touched(world: World) -> None:
    world.fake.add_worker(AGENT, states=(HEALTHY,))
    await world.person_joins("s-listening")
    world.fake.create_dispatch("s-listening", AGENT)

    async def listening() -> bool:
        room = await world.room("s-listening")
        return [e["agent_state"] for e in room.get("expected", [])] == ["listening"]

    await wait_until(listening, "its agent seen listening")
    await looked_again(world, "s-listening", LOOKS_AFTER)
    assert ("RemoveParticipant", "s-listening") not in world.fake.calls
    assert world.created("s-listening") == 0
    room = await world.room("s-listening")
    assert (room["state"], room["recovery"]["state"], room["recovery"]["deadline"]) == (
        "agent_active",
        "none",
        None,
    )

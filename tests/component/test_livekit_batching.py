"""Existence checks asked together (issue 30): what the stand-in LiveKit receives from the real
livekit-api client when many rooms are asked about at once (`workers.adapters.existence`,
`LiveKitRooms.observe_many`)."""

from __future__ import annotations

import asyncio

from devtools.simulator.livekit import FakeLiveKit
from devtools.simulator.serving import serve
from tests.support.settings import KEY, SECRET
from workers.adapters.livekit import LiveKitRooms
from workers.core.errors import UpstreamError

THERE = [f"there-{i}" for i in range(20)]
GONE = [f"gone-{i}" for i in range(20)]


def fake_with_rooms() -> FakeLiveKit:
    fake = FakeLiveKit(KEY, SECRET)
    for room in THERE:
        fake.join(room, "alice")
    return fake


async def test_concurrent_checks_share_a_few_list_rooms_and_each_gets_its_own_answer() -> None:
    fake = fake_with_rooms()
    async with serve(fake.app) as url:
        rooms = LiveKitRooms(url, KEY, SECRET, timeout=2.0)
        try:
            seen = await asyncio.gather(*(rooms.observe(room) for room in THERE + GONE))
        finally:
            await rooms.aclose()
    assert [exists for exists, _, _ in seen] == [True] * len(THERE) + [False] * len(GONE)
    assert all(len(people) == 1 for _, people, _ in seen[: len(THERE)])
    listed = [c for c in fake.calls if c[0] == "ListRooms"]
    assert 1 <= len(listed) <= 3  # 40 rooms asked about at once: not 40 calls
    assert sum(1 for c in fake.calls if c[0] == "ListParticipants") == len(THERE)  # only rooms there


async def test_observe_many_asks_once_whether_the_rooms_exist_and_a_rooms_failure_is_its_own() -> None:
    fake = fake_with_rooms()
    fake.fail("ListDispatch", 503, times=1)
    async with serve(fake.app) as url:
        rooms = LiveKitRooms(url, KEY, SECRET, timeout=2.0)
        try:
            seen = await rooms.observe_many(THERE + GONE, at_once=5)
        finally:
            await rooms.aclose()
    assert [c[0] for c in fake.calls].count("ListRooms") == 1
    failed = [r for r in seen if isinstance(r, UpstreamError)]
    assert len(failed) == 1 and failed[0].retryable  # one room's 503, the others answered
    answered = [r for r in seen if not isinstance(r, UpstreamError)]
    assert sum(exists for exists, _, _ in answered) == len(THERE) - 1
    assert seen[len(THERE) :] == [(False, (), ())] * len(GONE)

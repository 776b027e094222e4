"""Existence checks asked together (`workers.adapters.existence.RoomsListed`): whatever happens to the
shared `ListRooms` call, every caller waiting on it hears an answer or an error, never waits forever."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from workers.adapters.existence import RoomsListed
from workers.core.errors import UpstreamError

ANSWER_WITHIN = 2.0  # seconds: a caller still waiting after this would wait forever


class SlowLiveKit:
    """A `ListRooms` that answers only when the test lets it."""

    def __init__(self, rooms: set[str]) -> None:
        self.rooms, self.asked, self.release = rooms, asyncio.Event(), asyncio.Event()
        self.calls: list[list[str]] = []

    async def list_named(self, names: Sequence[str]) -> set[str]:
        self.calls.append(list(names))
        self.asked.set()
        await self.release.wait()
        return self.rooms & set(names)


async def started(listed: RoomsListed, live: SlowLiveKit, *rooms: str) -> list[asyncio.Task[bool]]:
    checks = [asyncio.create_task(listed.has(room)) for room in rooms]
    await live.asked.wait()
    return checks


async def outcomes(checks: list[asyncio.Task[bool]]) -> list[bool | BaseException]:
    return await asyncio.wait_for(asyncio.gather(*checks, return_exceptions=True), ANSWER_WITHIN)


async def test_the_shared_call_cancelled_mid_call_fails_every_caller_instead_of_leaving_it_waiting() -> None:
    live = SlowLiveKit({"a"})
    listed = RoomsListed(live.list_named)
    checks = await started(listed, live, "a", "b")  # both in the call under way
    checks.append(asyncio.create_task(listed.has("c")))  # waits for the next call
    await asyncio.sleep(0)  # "c" is queued behind the call under way
    assert listed._task is not None
    listed._task.cancel()  # as the worker's loop does when it shuts down
    seen = await outcomes(checks)
    assert all(isinstance(e, UpstreamError) and e.retryable for e in seen), seen


async def test_aclose_stops_the_call_and_its_callers_hear_an_error() -> None:
    live = SlowLiveKit({"a"})
    listed = RoomsListed(live.list_named)
    checks = await started(listed, live, "a", "b")
    await listed.aclose()
    seen = await outcomes(checks)
    assert all(isinstance(e, UpstreamError) for e in seen), seen


async def test_the_first_caller_giving_up_leaves_the_call_answering_the_others() -> None:
    live = SlowLiveKit({"a", "b"})
    listed = RoomsListed(live.list_named)
    first, *others = await started(listed, live, "a", "b", "x")
    first.cancel()  # its job timed out
    with pytest.raises(asyncio.CancelledError):
        await first
    live.release.set()
    assert await outcomes(others) == [True, False]
    assert live.calls == [["a", "b", "x"]]


async def test_a_check_after_a_stopped_call_is_asked_afresh() -> None:
    live = SlowLiveKit({"a"})
    listed = RoomsListed(live.list_named)
    checks = await started(listed, live, "a")
    await listed.aclose()
    await outcomes(checks)
    live.release.set()
    assert await asyncio.wait_for(listed.has("a"), ANSWER_WITHIN) is True

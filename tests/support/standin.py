"""The stand-in LiveKit served on loopback, on a clock the test moves, with the real livekit-api client:
what the stand-in's component tests share."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from livekit.api import LiveKitAPI

from devtools.simulator.livekit import FakeLiveKit, ManualClock, faithful
from devtools.simulator.serving import serve
from tests.support.settings import KEY, SECRET


@asynccontextmanager
async def served(t0: float) -> AsyncIterator[tuple[FakeLiveKit, ManualClock, LiveKitAPI, str]]:
    """A faithful stand-in at `t0` on its own clock, served; (the fake, its clock, a client, its URL)."""
    clock = ManualClock(t0)
    fake = FakeLiveKit(KEY, SECRET, clock=clock, **faithful(missing_room_wait=0.2))
    async with serve(fake.app) as url:
        api = LiveKitAPI(url, KEY, SECRET)
        try:
            yield fake, clock, api, url
        finally:
            await api.aclose()

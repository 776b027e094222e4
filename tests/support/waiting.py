"""Waiting for a running Warden to reach a state, instead of sleeping or reading it once: a live system
(crons, heartbeats, jobs in flight) can be anywhere at a given instant."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


async def wait_until(
    check: Callable[[], Awaitable[bool]], what: str, timeout: float = 30.0, *, every: float = 0.1
) -> None:
    """Poll Warden's API, as an operator would, every `every` seconds until `check` holds."""
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for: {what}")
        await asyncio.sleep(every)


def read_until(
    read: Callable[[], T],
    holds: Callable[[T], bool],
    what: str,
    *,
    timeout: float = 30.0,
    describe: Callable[[T], object] = repr,
) -> T:
    """Call `read` until what it returns `holds`, and return that reading; after `timeout` seconds,
    fail naming `what` and showing `describe` of the last reading."""
    deadline = time.monotonic() + timeout
    while not holds(reading := read()):
        if time.monotonic() > deadline:
            last = describe(reading)
            raise AssertionError(f"timed out after {timeout:g} s waiting for: {what}; last read {last}")
        time.sleep(0.1)
    return reading

"""The stand-in LiveKit's sense of time: the real clock (the simulator, the e2e tests), or one a test moves.

The stand-in's timing (a job listed seconds after its worker took it, an agent that needs seconds to
connect, a crashed agent that stays listed 20 s) runs on timers. On `RealClock` they are asyncio timers;
on `ManualClock` they run when the test moves the clock past them, in the order they fall due, each
seeing the clock at its own time — so a test of a 20-second timeout takes no 20 seconds, and no sleep.
`ManualClock` is also the clock the worker's jobs run on in `tests.support.harness` (a callable
returning Unix seconds, as Warden's clock is), so that LiveKit's times and Warden's agree there.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol


class Timer(Protocol):
    def cancel(self) -> None: ...


class Clock(Protocol):
    def __call__(self) -> float:
        """Now, in Unix seconds."""
        ...

    def call_at(self, when: float, callback: Callable[[], None]) -> Timer:
        """Run `callback` once the clock reads `when` (at once if it is past)."""
        ...


class RealClock:
    """Wall time; timers on the running event loop."""

    def __call__(self) -> float:
        return time.time()

    def call_at(self, when: float, callback: Callable[[], None]) -> Timer:
        return asyncio.get_running_loop().call_later(max(0.0, when - time.time()), callback)


@dataclass(order=True)
class _Due:
    when: float
    seq: int
    callback: Callable[[], None] = field(compare=False)
    cancelled: bool = field(default=False, compare=False)

    def cancel(self) -> None:
        self.cancelled = True


class ManualClock:
    """A clock that moves only when told to. Setting `now` runs every timer due by then,
    earliest first, with the clock at that timer's time; a timer set by a timer runs too if it is due.
    Setting `now` backwards moves the clock back and runs nothing."""

    def __init__(self, now: float | None = None) -> None:
        self._now = float(int(time.time())) if now is None else now
        self._due: list[_Due] = []
        self._seq = itertools.count()

    def __call__(self) -> float:
        return self._now

    @property
    def now(self) -> float:
        return self._now

    @now.setter
    def now(self, value: float) -> None:
        while self.step(value):
            pass
        self._now = value

    def call_at(self, when: float, callback: Callable[[], None]) -> Timer:
        due = _Due(when, next(self._seq), callback)
        heapq.heappush(self._due, due)
        return due

    def next_due(self) -> float | None:
        """When the next timer falls due (None: no timer set)."""
        while self._due and self._due[0].cancelled:
            heapq.heappop(self._due)
        return self._due[0].when if self._due else None

    def step(self, until: float) -> bool:
        """Run the next timer due by `until` (the clock moved to its time, if later); was there one?"""
        when = self.next_due()
        if when is None or when > until:
            return False
        due = heapq.heappop(self._due)
        self._now = max(self._now, due.when)
        due.callback()
        return True

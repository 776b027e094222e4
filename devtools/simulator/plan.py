"""What a simulation injects (`--failure`): the shares of rooms whose agent fails, an outage, a quiet spell
with no new rooms, and a deployment that falls asleep.

`never-joins:0.1,leaves:0.05,stalls:0.05,stuck:0.05,never-comes:0.05` are shares of rooms (stuck: the
agent joins and publishes, and its `lk.agent.state` stays `initializing`; never-comes: no agent comes
however often it is dispatched, so Warden's re-dispatches are spent and the room fails: the person gets
the fallback agent, a phone caller is transferred, issue 27); `outage:START+LENGTH` (seconds into the run)
answers no dispatch for LENGTH seconds or until the Cloud agent is restarted; `quiet:START+LENGTH` starts
no new room for LENGTH seconds (a quiet night: only canaries dispatch the agent then); `sleepy:SECONDS`
gives the agent's deployment a quiet spell of SECONDS after which it falls asleep and swallows its next
dispatches until restarted (`deployments.py`); `sleepy:SECONDSxTIMES` only TIMES times.
`full:START+LENGTH`: the agent's deployment is full for LENGTH seconds: LiveKit refuses each job for want of
capacity (JSR_NO_CAPACITY, `job_states.py`), and no agent comes for it; a restart changes nothing.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

FATES = ("never_joins", "leaves", "stalls", "stuck", "never_comes")  # (added last: seeded draws stay)
KNOWN = "never-joins, leaves, stalls, stuck, never-comes, outage, quiet, sleepy, full"


@dataclass(frozen=True)
class Outage:
    start: float  # seconds after the run starts
    length: float
    every: float | None = None  # then again every `every` seconds (each ended early by its own restart)

    def index(self, elapsed: float) -> int | None:
        """Which outage (0, 1, ...) is on `elapsed` seconds into the run, or None."""
        if elapsed < self.start:
            return None
        n = int((elapsed - self.start) // self.every) if self.every else 0
        return n if elapsed - self.start - n * (self.every or 0.0) < self.length else None


@dataclass(frozen=True)
class FailurePlan:
    never_joins: float = 0.0
    leaves: float = 0.0
    stalls: float = 0.0
    outage: Outage | None = None
    quiet: Outage | None = None  # a spell with no new rooms (`Outage` as a window of time)
    sleepy: float | None = None  # the agent's deployment falls asleep after this many quiet seconds
    sleeps: int | None = None  # ... only this many times (None: after every quiet spell)
    stuck: float = 0.0  # the first agent joins, publishes, and its `lk.agent.state` stays initializing
    full: Outage | None = None  # a spell in which the agent's workers are full (jobs refused)
    never_comes: float = 0.0  # no agent comes for any dispatch of the room (the fallback's case)

    def fate(self, rng: random.Random) -> str:
        roll = rng.random()
        for name in FATES:
            share: float = getattr(self, name)
            if roll < share:
                return name
            roll -= share
        return "ok"


def parse_failures(text: str) -> FailurePlan:
    """`never-joins:0.1,leaves:0.05,stalls:0.05,outage:30+20,quiet:150+90,sleepy:20,full:300+30` (shares
    of rooms; outage, quiet and full START+LENGTH s; sleepy SECONDS or SECONDSxTIMES)."""
    values: dict[str, Any] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, sep, value = part.partition(":")
        key = name.strip().replace("-", "_")
        if not sep:
            raise ValueError(f"'{part}': expected NAME:VALUE")
        if key in ("outage", "quiet", "full"):
            values[key] = _window(part, key, value)
        elif key == "sleepy":
            seconds, times_given, times = value.partition("x")
            values["sleepy"] = _seconds(part, seconds)
            if times_given:
                values["sleeps"] = _times(part, times)
        elif key in FATES:
            try:
                share = float(value)
            except ValueError:
                raise ValueError(f"'{part}': {name} takes a share of rooms from 0 to 1") from None
            if not 0 <= share <= 1:
                raise ValueError(f"'{part}': {name} takes a share of rooms from 0 to 1")
            values[key] = share
        else:
            raise ValueError(f"'{name}': unknown failure (known: {KNOWN})")
    if sum(values.get(f, 0.0) for f in FATES) > 1:
        raise ValueError(
            "the shares of never-joins, leaves, stalls, stuck and never-comes add up to more than 1"
        )
    return FailurePlan(**values)


def _window(part: str, key: str, value: str) -> Outage:
    wrong = f"'{part}': {key} is START+LENGTH in seconds, e.g. {key}:30+20"
    start, plus, length = value.partition("+")
    try:
        window = Outage(float(start), float(length))
    except ValueError:
        raise ValueError(wrong) from None
    if not plus or window.start < 0 or window.length <= 0:
        raise ValueError(wrong)
    return window


def _seconds(part: str, value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        seconds = 0.0
    if not seconds > 0:
        raise ValueError(f"'{part}': sleepy takes the seconds of quiet after which the deployment sleeps")
    return seconds


def _times(part: str, value: str) -> int:
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f"'{part}': sleepy is SECONDS or SECONDSxTIMES, e.g. sleepy:15x1")
    return int(value)

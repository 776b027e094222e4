"""Canaries: a test session per agent, placed on a schedule, so that a sleeping or broken agent is found
before a person waits for it. Pure: the schedule, the verdict and the streak of failures, from plain
values (the runs the store keeps, the agent's incident as the store read it, the clock as an input).

A canary of agent `a` is the room `warden-canary-a-<n>` (`room_name`; `n` the run's number), the agent
dispatched to it with the metadata `{"warden_canary": true}`, and the time until a participant of kind
AGENT with that name is in it. It passes when that time is at most the canary's SLA, and fails when it
is longer or the agent never came. The room is deleted either way. A run no worker finished (the worker
died) is `interrupted`: not a verdict on the agent, and its room is deleted by the next run.

When a canary is due (`due`): `every` seconds after the last one started; every `every / 5` while the
agent's incident is open, and after a failure (one failure is confirmed or cleared soon, not a whole
period later); at once when the incident's restart landed after the last canary started.
A failed run is told apart by its dispatch as `ListDispatch` lists it at the run's end (`classify`,
`workers.core.job_signals`): a job LiveKit refused for want of capacity (`JSR_NO_CAPACITY`, none of it
running) makes the run `capacity`: the agent's workers are there but full, which a restart does not
mend, so it feeds the capacity incident and never the outage. Any other failure (no job at all: no
worker took it; a job a worker took whose agent never came; a late agent; no listing) stays `fail`.
A refused job is listed about `JOB_LISTING_LAG` after the dispatch, like any job: a run whose wait
ended sooner, its dispatch listed with no job yet, looks again once that long after it (`look_again`).

`failures` verdicts of `fail` in a row (`streak`, interrupted runs skipped) report the agent's outage;
a `capacity` run between two of them neither counts nor breaks the streak (the workers answering
"full" says nothing of whether they would serve the job; only a pass does);
after its restart, only canaries started `restart_grace` or more after it count (`counts_after`): the
deployment is given the grace to come up, as waiting rooms are, though one that passes sooner ends the
incident at once.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from workers.core import job_signals
from workers.core.events import DispatchInfo

PREFIX = "warden-canary-"
METADATA = json.dumps({"warden_canary": True})
OPEN_INCIDENT_DIVISOR = 5  # while the agent's incident is open, canaries run this many times as often
LATE_FACTOR = 2.0  # how long a run waits, in SLAs: a late agent's time is still worth knowing
JOB_LISTING_LAG = 5.5  # a job is listed ~5 s after LiveKit assigned (or refused) it [real: 5.0-5.1 s]


class Outcome(StrEnum):
    """A canary run's outcome (the `outcome` column of its row)."""

    RUNNING = "running"
    PASSED = "pass"
    FAILED = "fail"
    CAPACITY = "capacity"  # its job refused for want of capacity: the workers are full, not gone
    INTERRUPTED = "interrupted"  # its worker died: no verdict on the agent


@dataclass(frozen=True)
class CanaryPolicy:
    """One agent's canary terms, as plain values."""

    agent: str
    every: float  # seconds between canaries
    sla: float  # the agent must be in the room this many seconds after its dispatch
    failures: int = 2  # this many failures in a row are an outage
    restart_grace: float = 20.0  # after a restart, failures count from this long after it


@dataclass(frozen=True)
class Run:
    """A canary run as the store keeps it."""

    n: int
    agent: str
    room: str
    started_at: float
    outcome: Outcome = Outcome.RUNNING
    seconds: float | None = None  # from the dispatch to the agent in the room
    finished_at: float | None = None
    detail: str = ""


def wait_seconds(policy: CanaryPolicy) -> float:
    """How long a run waits for its agent after the dispatch."""
    return policy.sla * LATE_FACTOR


def empty_timeout(policy: CanaryPolicy) -> int:
    """The canary room's `empty_timeout`: LiveKit closes a room no person joined this long after it was
    created, agent or not (livekit-server v1.13.5), so it must outlive the run's wait; and it closes a
    room left behind, should every delete fail."""
    return int(wait_seconds(policy)) + 30


def room_name(agent: str, n: int) -> str:
    return f"{PREFIX}{agent}-{n}"


def is_canary_room(name: str) -> bool:
    """Is `name` a canary's room? (Such rooms are not user rooms: no timeline, no count, no SLA.)"""
    return name.startswith(PREFIX)


def agent_prefix(agent: str) -> str:
    """The start of every canary room's name of `agent` (a leftover room is found by it)."""
    return f"{PREFIX}{agent}-"


def due(
    policy: CanaryPolicy,
    now: float,
    last_started: float | None,
    *,
    incident_open: bool = False,
    restarted_at: float | None = None,
    last_failed: bool = False,
) -> bool:
    """Is the agent's next canary due at `now`? (See the module's comment.)"""
    if last_started is None:
        return True
    if incident_open and restarted_at is not None and restarted_at >= last_started:
        return True
    sooner = incident_open or last_failed
    every = policy.every / OPEN_INCIDENT_DIVISOR if sooner else policy.every
    return now >= last_started + every


def counts_after(policy: CanaryPolicy, restarted_at: float | None) -> float | None:
    """From when a canary's failure counts towards an outage: `restart_grace` after the incident's restart
    (None: no restart, every failure counts)."""
    return None if restarted_at is None else restarted_at + policy.restart_grace


def verdict(policy: CanaryPolicy, seconds: float | None) -> Outcome:
    """Pass when the agent came within the SLA; fail when later or never (`seconds` None)."""
    return Outcome.PASSED if seconds is not None and seconds <= policy.sla else Outcome.FAILED


def look_again(sent: float, now: float, dispatch: DispatchInfo | None, lag: float = JOB_LISTING_LAG) -> float:
    """How long after `now` a failed run lists its dispatch once more (0: not): a dispatch listed with
    no job yet, made less than `lag` ago, may yet show why (a refusal is listed late)."""
    if dispatch is None or dispatch.jobs:
        return 0.0
    return max(0.0, sent + lag - now)


def classify(policy: CanaryPolicy, seconds: float | None, dispatch: DispatchInfo | None) -> Outcome:
    """A run's outcome from the agent's time (None: it never came) and the run's dispatch as listed at
    its end (None: not listed): a pass within the SLA; `capacity` when the agent never came and LiveKit
    refused the dispatch's job for want of capacity; else a failure (an outage's)."""
    outcome = verdict(policy, seconds)
    if (
        outcome is Outcome.FAILED
        and seconds is None
        and dispatch is not None
        and job_signals.refused(dispatch)
    ):
        return Outcome.CAPACITY
    return outcome


def detail(policy: CanaryPolicy, seconds: float | None, dispatch: DispatchInfo | None) -> str:
    """What the run's row says of it (no personal data: agent, worker and job ids only)."""
    outcome = classify(policy, seconds, dispatch)
    if outcome is Outcome.PASSED:
        return f"the agent came after {seconds:.1f} s"
    if seconds is not None:
        return f"the agent came after {seconds:.1f} s, past its {policy.sla:g} s"
    if outcome is Outcome.CAPACITY:
        return "LiveKit refused its job for want of capacity (JSR_NO_CAPACITY): the agent's workers are full"
    said = f"the agent did not come within {wait_seconds(policy):g} s"
    if dispatch is None:
        return said
    took = sorted({j.worker_id for j in dispatch.jobs if j.worker_id})
    if took:
        return f"{said}; worker {', '.join(took)} took its job"
    if not dispatch.jobs:
        return f"{said}; no worker took its job"
    return said


def streak(outcomes: Iterable[Outcome]) -> int:
    """Failures in a row, newest first (interrupted, running and capacity runs skipped: no verdict on
    whether the agent serves)."""
    count = 0
    for outcome in outcomes:
        if outcome is Outcome.FAILED:
            count += 1
        elif outcome is Outcome.PASSED:
            break
    return count

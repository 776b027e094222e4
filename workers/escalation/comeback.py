"""After a restart: the rooms waiting get a fresh start, and, for a LiveKit Cloud agent, Warden watches
its deployment come back instead of waiting the whole grace.

`fresh_start_all` gives every waiting room its fresh start (`EventKind.AGENT_RESTARTED`), all of them
in one call (`workers.jobs.rooms.bulk`: in batches whose writes share commits; once the deployment is
back, re-checked and re-dispatched in batches too). `when_back` polls `ListAgents` every `POLL_SECONDS` after
`RestartAgent` and says when the deployment, having reported no running replica since the restart,
reports one: then the rooms get a second fresh start with no wait, re-checked and re-dispatched at once.
`WARDEN_RESTART_GRACE_SECONDS` stays the upper bound: a deployment that reports running replicas from
the first poll on (the restart may not have taken effect yet, or LiveKit lists a stale status), lists
none, or does not come back in time, is left to the grace's deadlines. A deploy hook says nothing of
when workers are up: the grace is its only rule.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence

from sqlalchemy.ext.asyncio import AsyncEngine

from workers.adapters.cloud import Cloud
from workers.core.errors import UpstreamError
from workers.store import incidents

log = logging.getLogger("warden.escalation")

POLL_SECONDS = 0.5  # a return seen half a second after it at most; 40 ListAgents calls in a 20-s grace

# the waiting rooms (sid, name), the incident id, the wait
FreshStart = Callable[[Sequence[tuple[str, str]], str, float | None], Awaitable[None]]


async def fresh_start_all(
    engine: AsyncEngine,
    agent_name: str,
    incident_id: str,
    fresh_start: FreshStart,
    now: float,
    wait: float | None = None,
) -> int:
    """Every room still waiting for the agent (only for this one: a room waiting for another of its
    agents is another incident's) joins the incident and gets a fresh start, re-checked `wait` seconds
    later (None: the restart grace); how many rooms."""
    waiting = await incidents.waiting_rooms(engine, agent_name)
    # Every room still waiting for the agent is part of the outage, and of its resolution.
    await incidents.open_or_join(engine, agent_name, "waiting at the restart", waiting, now)
    if waiting:
        await fresh_start(waiting, incident_id, wait)
    return len(waiting)


async def when_back(
    cloud: Cloud,
    agent_name: str,
    grace: float,
    *,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> float | None:
    """Seconds from now until the agent's deployment came back (running replicas reported after a poll
    that reported none), polled every `POLL_SECONDS` for at most `grace` seconds; None when it did not,
    or when LiveKit lists no deployment to tell by."""
    started, seen_down = clock(), False
    while True:
        try:
            running = await cloud.running(agent_name)
        except UpstreamError as exc:  # a failed poll tells nothing; the next may
            log.warning("agent %s: its deployment could not be read: %s", agent_name, exc)
        else:
            if running is None:
                return None
            if running and seen_down:
                return clock() - started
            seen_down = seen_down or not running
        if clock() - started + POLL_SECONDS >= grace:
            return None
        await sleep(POLL_SECONDS)

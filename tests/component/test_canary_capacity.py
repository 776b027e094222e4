"""Canaries against workers that are full (the known defect of issue 25 after issue 26): the real runner
(`workers.jobs.canaries.runner`) and the agents' incidents (`workers.escalation`) on a real Redis and
database, the stand-in LiveKit served on loopback through the real livekit-api client, its Cloud agent
restarted through Warden's own adapter. Canaries whose job LiveKit refused for want of capacity
(JSR_NO_CAPACITY) are `capacity` runs: a capacity incident, no outage and no RestartAgent however many
fail; canaries for an agent with no worker at all still fail as an outage and restart its deployment."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

import httpx
import pytest
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from devtools.simulator.livekit import FakeLiveKit
from devtools.simulator.serving import serve
from tests.support.settings import KEY, SECRET
from workers.adapters.cloud import CloudAgents
from workers.adapters.livekit import LiveKitRooms
from workers.core.canary import CanaryPolicy, Outcome
from workers.core.rules import Rules
from workers.escalation.agents import Incidents
from workers.escalation.policy import OutagePolicy
from workers.jobs.canaries.runner import Canaries
from workers.store import canary_runs, incident_steps

# SQLite only: the runs' and incidents' store is tested on both databases in test_canaries.py
pytestmark = [pytest.mark.asyncio, pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)]

AGENT, CLOUD_AGENT = "notetaker", "CA_notetaker"
SLA = 0.5  # the stand-in's worker here is warm and quick (0.1 s); a run its agent does not come to waits 1 s
LISTING_LAG = 1.5  # the stand-in lists a job (a refused one too) this long after the dispatch: after the
# wait, so the refusal is seen only by looking again (the runner's lag: 2 s)


@dataclass
class Setting:
    fake: FakeLiveKit
    canaries: Canaries
    engine: AsyncEngine

    async def runs(self, count: int) -> list[str]:
        return [(await self.canaries.tick())[AGENT] for _ in range(count)]


async def noop_fresh_start(
    rooms: Sequence[tuple[str, str]], incident: str, agent: str, wait: float | None, *, observed: bool = False
) -> None:
    raise AssertionError("no user room here to start afresh")


@pytest.fixture
async def setting(engine: AsyncEngine, redis_url: str) -> AsyncIterator[Setting]:
    fake = FakeLiveKit(KEY, SECRET, cloud_agents={CLOUD_AGENT: AGENT}, job_listing_lag=LISTING_LAG)
    redis = Redis.from_url(redis_url)
    await redis.delete(f"warden:canary:lock:{AGENT}")
    async with serve(fake.app) as url, httpx.AsyncClient() as http:
        rooms = LiveKitRooms(url, KEY, SECRET, timeout=2.0)
        cloud = CloudAgents(url, KEY, SECRET, agent_id=CLOUD_AGENT)
        incidents = Incidents(
            engine=engine,
            redis=redis,
            policy=OutagePolicy(AGENT, restart_grace=0.0, attempts=1),
            rules=Rules(),
            cloud=cloud,
            hook=None,
            hook_url="",
            hook_secret="",
            http=http,
            alerter=None,
            clock=time.time,
            fresh_start=noop_fresh_start,
        )
        canaries = Canaries(
            engine=engine,
            redis=redis,
            rooms=rooms,
            reports=incidents,
            policies=[CanaryPolicy(AGENT, every=0.0, sla=SLA, failures=2, restart_grace=0.0)],
            clock=time.time,
            call_timeout=2.0,
            listing_lag=LISTING_LAG + 0.5,
        )
        try:
            yield Setting(fake, canaries, engine)
        finally:
            await rooms.aclose()
            await cloud.aclose()
            await redis.aclose()


async def test_canaries_against_full_workers_open_a_capacity_incident_and_restart_nothing(
    setting: Setting,
) -> None:
    setting.fake.add_worker(AGENT, accept_after=0.05, cold_start=0.05)
    setting.fake.fill(AGENT)  # every job of the agent refused: JSR_NO_CAPACITY
    outcomes = await setting.runs(2)  # `failures` in a row, were they outages
    assert setting.fake.restarts == []  # a restart adds no capacity
    incident = await incident_steps.open_incident(setting.engine, AGENT)
    assert incident is not None and incident.kind == "capacity"  # not an outage
    assert incident.canary_failing and incident.restarted_at is None
    assert outcomes == ["capacity"] * 2
    runs = await canary_runs.recent(setting.engine, AGENT, 2)
    assert {r.outcome for r in runs} == {Outcome.CAPACITY}
    assert all("want of capacity" in r.detail for r in runs)
    assert not [room for room in setting.fake.rooms if room.startswith("warden-canary-")]  # none left

    setting.fake.free(AGENT)  # jobs accepted again: the next canary passes and resolves the incident
    assert await setting.runs(1) == ["pass"]
    assert await incident_steps.open_incident(setting.engine, AGENT) is None
    assert setting.fake.restarts == []


async def test_canaries_for_an_agent_with_no_worker_still_restart_its_deployment(setting: Setting) -> None:
    assert await setting.runs(2) == ["fail", "fail"]  # no worker: the dispatch stays without a job
    incident = await incident_steps.open_incident(setting.engine, AGENT)
    assert incident is not None and incident.kind == "outage" and incident.canary_failing
    assert setting.fake.restarts == [CLOUD_AGENT]
    [latest] = await canary_runs.recent(setting.engine, AGENT, 1)
    assert latest.detail.endswith("no worker took its job")

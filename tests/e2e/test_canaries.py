"""Canaries from the Procfile, against the stand-in LiveKit (CreateRoom, CreateDispatch, DeleteRoom and the
webhooks they cause): a deployment asleep with no user room at all is restarted after
`WARDEN_CANARY_FAILURES` failed canaries and its incident resolves when the next passes; a healthy agent
never opens an incident, two workers run one canary at a time, and canary rooms never show as user rooms;
a worker killed mid-canary leaves no room behind once the next run is over."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from devtools.simulator.livekit import FakeLiveKit
from devtools.simulator.scenarios import SLEEPY_AGENT_ID, sleepy
from devtools.simulator.serving import serve
from tests.support.processes import Warden, run_warden
from tests.support.settings import KEY, SECRET
from tests.support.waiting import wait_until
from tests.support.world import AGENT, World

PREFIX = f"warden-canary-{AGENT}-"


@asynccontextmanager
async def livekit(fake: FakeLiveKit) -> AsyncIterator[tuple[str, httpx.AsyncClient]]:
    async with serve(fake.app) as url, httpx.AsyncClient() as client:
        yield url, client


@contextmanager
def warden_with_canaries(
    tmp_path: Path, url: str, redis_url: str, database_url: str, **env: str
) -> Iterator[Warden]:
    settings = {
        "REDIS_URL": redis_url,
        "DATABASE_URL": database_url,
        "LIVEKIT_URL": url,
        "WARDEN_CANARY_AGENTS": AGENT,
        "WARDEN_CANARY_EVERY": "1s",
        "WARDEN_CANARY_SLA_SECONDS": "2",  # the stand-in's agent comes 1.2 s after its dispatch
        "WARDEN_LIVEKIT_TIMEOUT_SECONDS": "1",
        "WARDEN_SWEEP_SECONDS": "1",
        "WARDEN_RECONCILE_SECONDS": "1",  # reconciliation sees the canary rooms too: it must not adopt them
        **env,
    }
    with run_warden(tmp_path, **settings) as warden:
        yield warden


async def canaries(client: httpx.AsyncClient, warden: Warden) -> list[dict[str, Any]]:
    agents = (await client.get(f"{warden.url}/api/canaries?limit=200")).json()["agents"]
    return next((a["runs"] for a in agents if a["agent"] == AGENT), [])


async def incidents(client: httpx.AsyncClient, warden: Warden) -> list[dict[str, Any]]:
    return (await client.get(f"{warden.url}/api/incidents")).json()["incidents"]


async def explain(client: httpx.AsyncClient, warden: Warden, fake: FakeLiveKit) -> str:
    """What a test that timed out saw: the canaries, the incidents, LiveKit's side, the logs' end."""
    return (
        f"runs {await canaries(client, warden)}\nincidents {await incidents(client, warden)}\n"
        f"restarts {fake.restarts}; rooms {sorted(fake.rooms)}\n{warden.log_text()[-5000:]}"
    )


def canary_rooms(fake: FakeLiveKit) -> list[str]:
    return [room for room in fake.rooms if room.startswith("warden-canary-")]


# One database each (the canary runs' store is tested on both in tests/component/test_canaries.py): two
# workers racing for the canary's lock on PostgreSQL, the rest on SQLite.
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_a_sleeping_deployment_is_restarted_by_canaries_with_no_user_room(
    tmp_path: Path, redis_url: str, database_url: str
) -> None:
    fake = FakeLiveKit(KEY, SECRET)
    async with livekit(fake) as (url, client):
        env = {
            "LK_AGENTS_URL": url,
            "WARDEN_CLOUD_AGENT_ID": SLEEPY_AGENT_ID,
            "WARDEN_RESTART_GRACE_SECONDS": "1",
        }
        with warden_with_canaries(tmp_path, url, redis_url, database_url, **env) as warden:
            World(fake, warden, client)
            sleepy(fake, AGENT, quiet=0.0, sleeps=1)  # asleep from the start, until restarted

            async def resolved() -> bool:
                found = await incidents(client, warden)
                return bool(found) and found[0]["state"] == "resolved"

            try:
                await wait_until(
                    resolved, "the canaries' incident opened, restarted and resolved", timeout=60
                )
            except AssertionError:
                raise AssertionError(await explain(client, warden, fake)) from None
            found = await incidents(client, warden)
            detail = (await client.get(f"{warden.url}/api/incidents/{found[0]['id']}")).json()
            runs = await canaries(client, warden)
            rooms = (await client.get(f"{warden.url}/api/rooms")).json()
    assert fake.restarts == [SLEEPY_AGENT_ID]  # once
    assert len(found) == 1 and found[0]["reason"].startswith("canary: 2 canaries in a row failed")
    assert detail["rooms"] == []  # no user room in it
    outcomes = [r["outcome"] for r in reversed(runs)]  # oldest first
    assert outcomes[:2] == ["fail", "fail"] and "pass" in outcomes[2:]
    assert rooms["rooms"] == []


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
async def test_a_healthy_agent_passes_one_canary_at_a_time_with_two_workers_and_no_user_room_shows(
    tmp_path: Path, redis_url: str, database_url: str
) -> None:
    fake = FakeLiveKit(KEY, SECRET)
    fake.add_worker(AGENT)
    async with livekit(fake) as (url, client):
        with warden_with_canaries(tmp_path, url, redis_url, database_url) as warden:
            warden.start("worker")  # a second worker process: the canaries' cron ticks on both
            World(fake, warden, client)

            async def four_passed() -> bool:
                return sum(r["outcome"] == "pass" for r in await canaries(client, warden)) >= 4

            await wait_until(four_passed, "four canaries passed", timeout=60)
            runs = await canaries(client, warden)
            rooms = (await client.get(f"{warden.url}/api/rooms")).json()
            metrics = (await client.get(f"{warden.url}/metrics")).text
            found = await incidents(client, warden)
    finished = sorted((r["started_at"], r["finished_at"]) for r in runs if r["finished_at"])
    assert all(end <= start for (_, end), (start, _) in itertools.pairwise(finished))  # no overlap
    assert {r["outcome"] for r in runs} <= {"pass", "running"} and found == []
    created = [room for room, _ in fake.created if room.startswith(PREFIX)]
    assert len(created) == len(set(created)) == len(runs)  # each run dispatched once
    assert rooms["rooms"] == [] and "warden-canary" not in metrics
    assert len(canary_rooms(fake)) <= 1  # the one under way, if any


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_a_worker_killed_mid_canary_leaves_no_room_behind_after_the_next_run(
    tmp_path: Path, redis_url: str, database_url: str
) -> None:
    fake = FakeLiveKit(KEY, SECRET)  # no worker yet: the first canary waits for an agent that never comes
    async with livekit(fake) as (url, client):
        with warden_with_canaries(
            tmp_path, url, redis_url, database_url, WARDEN_CANARY_SLA_SECONDS="2.5"
        ) as warden:
            World(fake, warden, client)

            async def under_way() -> bool:
                runs = await canaries(client, warden)
                return bool(runs) and runs[0]["outcome"] == "running" and bool(canary_rooms(fake))

            await wait_until(under_way, "a canary under way")
            [left] = canary_rooms(fake)
            warden.kill("worker")
            fake.add_worker(AGENT)  # the agent answers from now on
            warden.start("worker")

            async def cleaned_and_passed() -> bool:
                runs = await canaries(client, warden)
                return any(r["outcome"] == "pass" for r in runs) and not canary_rooms(fake)

            await wait_until(cleaned_and_passed, "the next run cleaned up and passed", timeout=60)
            runs = await canaries(client, warden)
    dead = next(r for r in runs if r["room"] == left)
    assert dead["outcome"] == "interrupted" and left not in fake.rooms

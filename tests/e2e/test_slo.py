"""Service levels from the Procfile (issue 29), against the stand-in LiveKit on loopback: ten rooms at
once, six whose agent comes in time, three whose agent misses its SLA and comes with Warden's
re-dispatch, one it never comes to (the room ends) → on time 6/10, served 9/10 in `GET /api/slo` and in
the worker's `warden_sli_events_total`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from devtools.embedded_redis import free_port
from devtools.simulator.livekit import FakeLiveKit
from tests.support.settings import KEY, SECRET
from tests.support.waiting import read_until, wait_until
from tests.support.world import AGENT, World, settled, warden_world

IN_TIME = [f"in-time-{n}" for n in range(6)]
LATE = [f"late-{n}" for n in range(3)]
NEVER = "never"


@pytest.fixture
async def setting(tmp_path: Path, redis_url: str) -> AsyncIterator[tuple[World, str]]:
    """Warden from its Procfile on a 1.5 s join SLA, one re-dispatch a room; the worker's metrics URL."""
    metrics_port = free_port()
    env = {
        "WARDEN_JOIN_SLA_SECONDS": "1.5",
        "WARDEN_SWEEP_SECONDS": "1",
        "WARDEN_MAX_REDISPATCHES": "1",
        "WARDEN_OUTAGE_ROOMS": "50",  # four rooms missing their SLA together are no outage here
        "WARDEN_WORKER_METRICS_PORT": str(metrics_port),
    }
    async with warden_world(tmp_path, redis_url, FakeLiveKit(KEY, SECRET), **env) as w:
        yield w, f"http://127.0.0.1:{metrics_port}/metrics"


def sli_events(exposition: str) -> dict[tuple[str, str], float]:
    return {
        (s.labels["sli"], s.labels["outcome"]): s.value
        for family in text_string_to_metric_families(exposition)
        for s in family.samples
        if s.name == "warden_sli_events_total" and s.labels["agent"] == AGENT
    }


async def test_ten_rooms_on_time_six_served_nine(setting: tuple[World, str]) -> None:
    w, metrics = setting
    w.arrive_on = {room: 1 for room in LATE}  # their agent answers Warden's first re-dispatch only
    for room in (*IN_TIME, *LATE, NEVER):
        await w.person_joins(room)
    for n, room in enumerate(IN_TIME):
        await w.agent_joins(room, f"agent-in-time-{n}")

    async def all_there() -> bool:
        rooms = [await w.room(room) for room in (*IN_TIME, *LATE)]
        never = await w.room(NEVER)
        return all(settled("agent_active")(r) for r in rooms) and never["recovery"]["state"] == "failed"

    await wait_until(all_there, "nine agents in their rooms, the tenth room failed")
    await w.person_leaves(NEVER)
    await w.webhook("room_finished", NEVER)

    async def slo() -> dict[str, Any]:
        (agent,) = (await w.client.get(f"{w.warden.url}/api/slo")).json()["agents"]
        return dict(agent)

    async def all_counted() -> bool:
        return bool((await slo())["served"]["total"] == 10)

    await wait_until(all_counted, "ten rooms counted")
    agent = await slo()
    assert agent["on_time"] == {"good": 6, "total": 10, "ratio": 0.6}
    assert agent["served"] == {"good": 9, "total": 10, "ratio": 0.9}
    expected = {("on_time", "good"): 6, ("on_time", "bad"): 4, ("served", "good"): 9, ("served", "bad"): 1}
    read_until(lambda: sli_events(httpx.get(metrics).text), expected.__eq__, "the worker's counts")

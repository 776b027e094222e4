"""LiveKit's job signals from the Procfile (issue 26), against the stand-in LiveKit on loopback: workers
that are full across four rooms make a capacity alert and no RestartAgent; a job LiveKit retries itself
and serves within the grace gets no CreateDispatch from Warden; a room whose job was cancelled is no
breach; the worker that swallowed three jobs is named in the incident."""

from __future__ import annotations

import json
import math
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from devtools.embedded_redis import free_port
from devtools.simulator.livekit import FakeLiveKit
from devtools.simulator.serving import serve
from tests.support.processes import run_warden
from tests.support.receiver import Receiver, receiving
from tests.support.settings import KEY, SECRET
from tests.support.waiting import wait_until
from tests.support.world import AGENT, World, settled

CLOUD_AGENT = "CA_notetaker"


@pytest.fixture
async def setting(
    tmp_path: Path, redis_url: str, request: pytest.FixtureRequest
) -> AsyncIterator[tuple[World, Receiver, str]]:
    """Warden from its Procfile, the stand-in LiveKit (a Cloud agent to restart), Slack and the incident
    webhook; the worker's metrics URL."""
    fake = FakeLiveKit(KEY, SECRET, cloud_agents={CLOUD_AGENT: AGENT})
    metrics_port = free_port()
    async with (
        serve(fake.app) as livekit_url,
        receiving() as alerts,
        httpx.AsyncClient() as client,
    ):
        env = {
            "REDIS_URL": redis_url,
            "DATABASE_URL": f"sqlite:///{tmp_path}/w.db",
            "LIVEKIT_URL": livekit_url,
            "LK_AGENTS_URL": livekit_url,
            "WARDEN_CLOUD_AGENT_ID": CLOUD_AGENT,
            "WARDEN_AGENT_NAME": AGENT,
            "WARDEN_ALERT_WEBHOOK_URL": f"{alerts.url}/slack",
            "WARDEN_INCIDENT_WEBHOOK_URL": f"{alerts.url}/events",
            "WARDEN_JOIN_SLA_SECONDS": "1.5",
            "WARDEN_SWEEP_SECONDS": "1",
            "WARDEN_OUTAGE_ROOMS": "3",
            "WARDEN_WORKER_METRICS_PORT": str(metrics_port),
            **getattr(request, "param", {}),
        }
        with run_warden(tmp_path, **env) as warden:
            yield World(fake, warden, client), alerts, f"http://127.0.0.1:{metrics_port}/metrics"


async def incidents(w: World) -> list[dict[str, Any]]:
    listed = (await w.client.get(f"{w.warden.url}/api/incidents")).json()["incidents"]
    return [(await w.client.get(f"{w.warden.url}/api/incidents/{i['id']}")).json() for i in listed]


async def timeline(w: World, room: str) -> list[str]:
    return [e["type"] for e in (await w.room(room)).get("timeline", [])]


async def test_workers_full_across_four_rooms_give_a_capacity_alert_and_no_restart(
    setting: tuple[World, Receiver, str],
) -> None:
    w, alerts, metrics = setting
    w.fake.add_worker(AGENT)
    w.fake.fill(AGENT)  # every job of the agent refused: JSR_NO_CAPACITY
    rooms = [f"full-{i}" for i in range(4)]
    for room in rooms:
        await w.person_joins(room)
        w.fake.create_dispatch(room, AGENT)

    async def opened_and_said() -> bool:
        found = await incidents(w)
        return (
            bool(found)
            and len(found[0]["rooms"]) == 4
            and {r.path for r in alerts.received} == {"/slack", "/events"}
        )

    await wait_until(opened_and_said, "a capacity incident with the four rooms, said on both routes")

    async def tried_past_the_redispatch_limit() -> bool:  # WARDEN_MAX_REDISPATCHES is 2
        counts = [(await timeline(w, room)).count("Redispatch") for room in rooms]
        return all(n >= 3 for n in counts)

    await wait_until(tried_past_the_redispatch_limit, "re-dispatched, never given up", timeout=60)
    (incident,) = await incidents(w)
    assert incident["kind"] == "capacity" and incident["state"] == "open"
    assert w.fake.restarts == []  # a restart adds no capacity
    slack = [r.json()["text"] for r in alerts.at("/slack")]
    assert len(slack) == 1 and "workers for notetaker are full" in slack[0]
    (event,) = [r.json() for r in alerts.at("/events")]
    assert (event["event"], event["kind"]) == ("opened", "capacity")
    assert "workers for notetaker are full" in event["summary"]
    for room in rooms:
        assert (await w.room(room))["recovery"]["state"] != "failed", room
    scraped = httpx.get(metrics).text
    assert f'warden_capacity_refusals_total{{agent="{AGENT}"}} 4.0' in scraped

    w.fake.free(AGENT)  # the workers accept jobs again: the next re-dispatch is served

    async def resolved() -> bool:
        return (await incidents(w))[0]["state"] == "resolved"

    await wait_until(resolved, "the capacity incident resolved once jobs are accepted", timeout=90)

    async def told() -> bool:
        said = [r.json().get("text") or r.json().get("summary", "") for r in alerts.received]
        return sum("workers for notetaker accept jobs again" in text for text in said) == 2

    await wait_until(told, "the resolution said on both routes")
    assert w.fake.restarts == []


@pytest.mark.parametrize("setting", [{"WARDEN_JOIN_SLA_SECONDS": "8"}], indirect=True)
async def test_a_job_livekit_retries_and_serves_within_the_grace_gets_no_dispatch_from_warden(
    setting: tuple[World, Receiver, str],
) -> None:
    """LiveKit retries the assignment for 12 s (its agent there at ~13 s): past the 10-s connect grace of
    a listed job, within one more join SLA after the 8-s deadline (16 s). Without the retry read, Warden
    re-dispatched at 10 s."""
    w, _, _ = setting
    w.fake.add_worker(AGENT)
    w.fake.retry(AGENT, 12.0)  # JS_PENDING with JSR_RETRYING, then a worker accepts
    await w.person_joins("retried")
    w.fake.create_dispatch("retried", AGENT)

    async def served() -> bool:
        return settled("agent_active")(await w.room("retried"))

    await wait_until(served, "the agent LiveKit's retry brought", timeout=40)
    assert w.created("retried") == 0
    assert "ReportBreach" not in await timeline(w, "retried")


async def test_a_room_whose_job_was_cancelled_is_no_breach(
    setting: tuple[World, Receiver, str],
) -> None:
    w, _, _ = setting
    w.fake.add_worker(AGENT, cold_start=math.inf)
    await w.person_joins("cancelled")
    dispatch = w.fake.create_dispatch("cancelled", AGENT)
    w.fake.cancel_job(dispatch.id)  # JS_CANCELLED: the application called it off

    async def looked_and_let_go() -> bool:  # a check whose listing shows the job cancelled
        room = await w.room("cancelled")
        checked = [e for e in room.get("timeline", []) if e["type"] == "presence_observed"]
        return bool(checked) and "CANCELLED" in json.dumps(checked[-1])

    await wait_until(looked_and_let_go, "the check that saw the job cancelled", timeout=30)
    room = await w.room("cancelled")
    assert room["recovery"]["state"] == "none" and room["recovery"]["deadline"]  # looked at again later
    assert w.created("cancelled") == 0 and await incidents(w) == []
    assert "ReportBreach" not in await timeline(w, "cancelled")


async def test_the_worker_that_swallowed_three_jobs_is_named_in_the_incident(
    setting: tuple[World, Receiver, str],
) -> None:
    w, alerts, _ = setting
    swallower = w.fake.add_worker(AGENT, cold_start=math.inf)  # accepts, and its agent never connects
    rooms = [f"swallowed-{i}" for i in range(3)]
    for room in rooms:
        await w.person_joins(room)
        w.fake.create_dispatch(room, AGENT)

    said = f"worker {swallower.id} took 3 jobs and none joined"

    async def named() -> bool:
        found = await incidents(w)
        return bool(found) and said in [a["outcome"] for a in found[0]["actions"]]

    try:
        await wait_until(named, "the worker named in the incident's log", timeout=40)
    except AssertionError:
        found = await incidents(w)
        lines = [[(e["type"], e.get("detail")) for e in (await w.room(r))["timeline"]] for r in rooms]
        raise AssertionError(f"{found}\n{lines}"[-6000:]) from None
    (incident,) = await incidents(w)
    assert incident["worker_ids"] == [swallower.id]

    async def alerted() -> bool:
        return bool(alerts.at("/events")) and bool(alerts.at("/slack"))

    await wait_until(alerted, "the opening alerts")
    opened = [e for e in (r.json() for r in alerts.at("/events")) if e["event"] == "opened"]
    assert opened and opened[0]["worker_ids"] == [swallower.id]
    slack = [r.json()["text"] for r in alerts.at("/slack")]
    assert f"W{said[1:]}: restart that worker." in slack[0]

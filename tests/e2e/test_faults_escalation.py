"""Faults with real processes: the worker SIGKILLed while an escalation call is in flight — the Cloud
agent's RestartAgent, an alert, the deploy hook — then a new worker started. The restart happens
exactly once, the alert arrives at least once and at most twice, the deploy hook lands.

Each receiver (the stand-in LiveKit, a Slack-compatible webhook, a deploy hook, all on loopback) holds
the first call it gets open without answering or carrying it out, as a call does whose caller died.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from devtools.simulator.livekit import FakeLiveKit
from devtools.simulator.serving import serve
from tests.support.processes import Warden, run_warden
from tests.support.settings import KEY, SECRET
from tests.support.waiting import wait_until
from tests.support.world import AGENT, World

ROOM = "fault-escalation"
CALL_ARRIVES_SECONDS = 30.0


class HoldFirst:
    """An ASGI app in front of `app`: the first request to a path ending in `suffix` is read (its body
    kept in `held`) and never answered nor passed on; the others go to `app`."""

    def __init__(self, app: ASGIApp, suffix: str) -> None:
        self.app, self.suffix = app, suffix
        self.arrived = asyncio.Event()
        self.held: list[bytes] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].endswith(self.suffix) or self.arrived.is_set():
            await self.app(scope, receive, send)
            return
        message = await receive()
        self.held.append(message.get("body", b""))
        self.arrived.set()
        while message["type"] != "http.disconnect":  # until the caller is gone
            message = await receive()


def receiver(path: str, received: list[dict[str, Any]]) -> Starlette:
    """Answers 200 to every JSON body POSTed to `path`, keeping them."""

    async def take(request: Request) -> PlainTextResponse:
        received.append(json.loads(await request.body()))
        return PlainTextResponse("ok")

    return Starlette(routes=[Route(path, take, methods=["POST"])])


def environment(redis_url: str, database_url: str, livekit_url: str) -> dict[str, str]:
    """One room missing its 1 s SLA is an outage; the sweep runs every second; a claim or an alert in
    the hands of a dead worker is taken up 3 s later."""
    return {
        "REDIS_URL": redis_url,
        "DATABASE_URL": database_url,
        "LIVEKIT_URL": livekit_url,
        "WARDEN_AGENT_NAME": AGENT,
        "WARDEN_JOIN_SLA_SECONDS": "1",
        "WARDEN_OUTAGE_ROOMS": "1",
        "WARDEN_SWEEP_SECONDS": "1",
        "WARDEN_RESTART_GRACE_SECONDS": "1",
        "WARDEN_CLAIM_LEASE_SECONDS": "3",
    }


async def kill_the_worker_once_it_calls(warden: Warden, held: HoldFirst) -> None:
    """SIGKILL the worker as soon as its call arrived, and start a new one."""
    await asyncio.wait_for(held.arrived.wait(), CALL_ARRIVES_SECONDS)
    warden.kill("worker")
    warden.start("worker")


async def incident(client: httpx.AsyncClient, warden: Warden) -> dict[str, Any]:
    listed = (await client.get(f"{warden.url}/api/incidents")).json()["incidents"]
    if not listed:
        return {}
    return dict((await client.get(f"{warden.url}/api/incidents/{listed[0]['id']}")).json())


def outcomes(found: dict[str, Any], action: str) -> list[str]:
    return [a["outcome"] for a in found.get("actions", []) if a["action"] == action]


async def logged(
    client: httpx.AsyncClient, warden: Warden, action: str, holds: Callable[[str], bool], what: str
) -> dict[str, Any]:
    """Wait until the incident's log has an `action` line whose outcome `holds`; the incident."""

    async def check() -> bool:
        return any(holds(o) for o in outcomes(await incident(client, warden), action))

    try:
        await wait_until(check, what, timeout=40)
    except AssertionError:
        raise AssertionError(
            f"{what}: {await incident(client, warden)}\n{warden.log_text()[-5000:]}"
        ) from None
    return await incident(client, warden)


async def test_worker_killed_during_restart_agent_the_restart_happens_exactly_once(
    tmp_path: Path, redis_url: str, database_url: str
) -> None:
    fake = FakeLiveKit(KEY, SECRET, cloud_agents={"CA_x": AGENT})
    held = HoldFirst(fake.app, "/RestartAgent")
    async with serve(held) as livekit_url, httpx.AsyncClient() as client:
        env = environment(redis_url, database_url, livekit_url)
        env |= {"LK_AGENTS_URL": livekit_url, "WARDEN_CLOUD_AGENT_ID": "CA_x"}
        with run_warden(tmp_path, **env) as warden:
            w = World(fake, warden, client)
            await w.person_joins(ROOM)
            await kill_the_worker_once_it_calls(warden, held)
            found = await logged(
                client, warden, "LiveKit Cloud agent restart", lambda o: o.startswith("restarted"), "restart"
            )
            await wait_until(lambda: _restarted(client, warden), "the incident marked restarted")
    assert fake.restarts == ["CA_x"]  # the held call was never carried out; the new worker's was, once
    assert outcomes(found, "LiveKit Cloud agent restart") == ["restarted CA_x: restarting"]


async def _restarted(client: httpx.AsyncClient, warden: Warden) -> bool:
    listed = (await client.get(f"{warden.url}/api/incidents")).json()["incidents"]
    return bool(listed) and listed[0]["restarted_at"] is not None


async def test_worker_killed_while_an_alert_is_in_flight_the_alert_arrives_once_or_twice(
    tmp_path: Path, redis_url: str, database_url: str
) -> None:
    fake = FakeLiveKit(KEY, SECRET)
    answered: list[dict[str, Any]] = []
    held = HoldFirst(receiver("/alerts", answered), "/alerts")
    async with serve(fake.app) as livekit_url, serve(held) as alerts_url, httpx.AsyncClient() as client:
        env = environment(redis_url, database_url, livekit_url)
        env["WARDEN_ALERT_WEBHOOK_URL"] = f"{alerts_url}/alerts"
        with run_warden(tmp_path, **env) as warden:
            await World(fake, warden, client).person_joins(ROOM)
            await kill_the_worker_once_it_calls(warden, held)
            found = await logged(
                client, warden, "alert opened", lambda o: "answered HTTP 200" in o, "the alert delivered"
            )
    opened = [json.loads(b)["text"] for b in held.held] + [a["text"] for a in answered]
    opened = [t for t in opened if t.startswith(":rotating_light:")]
    assert 1 <= len(opened) <= 2
    assert [o for o in outcomes(found, "alert opened") if "HTTP 200" in o] == [
        "alert webhook answered HTTP 200 (attempt 2)"
    ]


async def test_worker_killed_while_the_deploy_hook_is_in_flight_the_hook_lands(
    tmp_path: Path, redis_url: str, database_url: str
) -> None:
    fake = FakeLiveKit(KEY, SECRET)
    landed: list[dict[str, Any]] = []
    held = HoldFirst(receiver("/deploy", landed), "/deploy")
    async with serve(fake.app) as livekit_url, serve(held) as hook_url, httpx.AsyncClient() as client:
        env = environment(redis_url, database_url, livekit_url)
        env |= {"WARDEN_DEPLOY_HOOK_URL": f"{hook_url}/deploy", "WARDEN_DEPLOY_HOOK_SECRET": "s3cret"}
        with run_warden(tmp_path, **env) as warden:
            await World(fake, warden, client).person_joins(ROOM)
            await kill_the_worker_once_it_calls(warden, held)
            found = await logged(
                client, warden, "deploy hook", lambda o: "answered HTTP 200" in o, "the deploy hook landed"
            )
            await wait_until(lambda: _restarted(client, warden), "the incident marked restarted")
            logs = warden.log_text()
    assert len(landed) == 1 and landed[0]["rooms"] == [ROOM] and landed[0]["incident_id"] == found["id"]
    assert outcomes(found, "deploy hook")[-1] == "deploy hook answered HTTP 200 (attempt 2)"
    assert "/deploy" not in logs and "s3cret" not in logs  # the hook's URL and secret stay secret

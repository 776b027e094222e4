"""A maintenance window from the Procfile, clicked in Chromium: started from the dashboard's form
(its banner then on every page), it holds an outage of the LiveKit Cloud agent being deployed with no
restart and no alert while the rooms are still re-dispatched; its "End now" button brings one restart,
the alerts, and every room its agent."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx
from livekit.protocol.agent_dispatch import AgentDispatch
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from devtools.simulator.livekit import FakeLiveKit
from devtools.simulator.serving import serve
from tests.support.browser import chromium
from tests.support.processes import run_warden
from tests.support.settings import KEY, SECRET
from tests.support.waiting import wait_until
from tests.support.world import AGENT, World, settled

ROOMS = ["deploy-1", "deploy-2", "deploy-3"]


def slack(received: list[str]) -> Starlette:
    async def hook(request: Request) -> PlainTextResponse:
        received.append(json.loads(await request.body())["text"])
        return PlainTextResponse("ok")

    return Starlette(routes=[Route("/hook", hook, methods=["POST"])])


async def test_a_window_holds_an_outage_quietly_and_ending_it_brings_one_restart_and_the_alerts(
    tmp_path: Path, redis_url: str
) -> None:
    fake = FakeLiveKit(KEY, SECRET, cloud_agents={"CA_deploying": AGENT})
    alerts: list[str] = []
    async with (
        serve(fake.app) as livekit_url,
        serve(slack(alerts)) as slack_url,
        httpx.AsyncClient() as client,
    ):
        env = {
            "REDIS_URL": redis_url,
            "DATABASE_URL": f"sqlite:///{tmp_path / 'warden.db'}",
            "LIVEKIT_URL": livekit_url,
            "WARDEN_AGENT_NAME": AGENT,
            "LK_AGENTS_URL": livekit_url,
            "WARDEN_CLOUD_AGENT_ID": "CA_deploying",
            "WARDEN_ALERT_WEBHOOK_URL": f"{slack_url}/hook",
            "WARDEN_JOIN_SLA_SECONDS": "1",
            "WARDEN_RESTART_GRACE_SECONDS": "1",
            "WARDEN_SWEEP_SECONDS": "1",
            "WARDEN_OUTAGE_ROOMS": "3",
            "WARDEN_MAX_REDISPATCHES": "1",
        }
        with run_warden(tmp_path, **env) as warden:
            w = World(fake, warden, client)
            awake = {"yes": False}  # the deployment being deployed answers no dispatch until restarted
            fake.on_restart = lambda _agent_id: awake.update(yes=True)

            def on_dispatch(dispatch: AgentDispatch) -> None:
                if awake["yes"]:
                    task = asyncio.get_running_loop().create_task(
                        w.agent_joins(dispatch.room, f"agent-{dispatch.id}")
                    )
                    w.tasks.add(task)
                    task.add_done_callback(w.tasks.discard)

            fake.on_dispatch = on_dispatch

            async def incident() -> dict[str, object]:
                listed = (await client.get(f"{warden.url}/api/incidents")).json()["incidents"]
                return listed[0] if listed else {}

            async with chromium() as browser:
                page = await browser.new_page()
                await page.goto(f"{warden.url}/maintenance")
                await page.fill("input[name=agent]", AGENT)
                await page.fill("input[name=minutes]", "30")
                await page.fill("input[name=reason]", "deploying v2")
                await page.click("#start-maintenance")
                await page.goto(f"{warden.url}/")
                banner = await page.inner_text(".banner.maintenance")

                for room in ROOMS:
                    await w.person_joins(room)

                async def every_room_failed() -> bool:  # re-dispatched once each: escalated, held
                    rooms = [await w.room(room) for room in ROOMS]
                    return all((room.get("recovery") or {}).get("state") == "failed" for room in rooms)

                await wait_until(every_room_failed, "every room re-dispatched until failed", timeout=30)
                held = await incident()
                restarts_held, alerts_held = list(fake.restarts), list(alerts)
                dispatched_held = {room: len(fake.live_dispatches(room, AGENT)) for room in ROOMS}

                await page.goto(f"{warden.url}/maintenance")
                await page.click("button.end-maintenance")
                await page.wait_for_selector("tr[data-window].over")
                banners_after = await page.locator(".banner.maintenance").count()

            async def all_served() -> bool:
                return all(settled("agent_active")(room) for room in [await w.room(r) for r in ROOMS])

            await wait_until(all_served, "every room served after the window's end", timeout=30)

            async def resolved_and_told() -> bool:
                return (await incident()).get("state") == "resolved" and len(alerts) >= 2

            await wait_until(resolved_and_told, "the incident resolved and people told")
            detail = (await client.get(f"{warden.url}/api/incidents/{held['id']}")).json()
    assert banner.startswith(f"maintenance: agent {AGENT} until ") and banner.endswith(
        " UTC, by loopback: deploying v2"
    )
    assert held["in_maintenance"] is True and held["state"] == "open"
    assert restarts_held == [] and alerts_held == []  # no restart, no alert while the window held
    assert all(n >= 1 for n in dispatched_held.values())  # re-dispatch went on
    assert banners_after == 0
    assert fake.restarts == ["CA_deploying"]  # one restart once it ended
    assert (
        len(alerts) == 2
        and alerts[0].startswith(":rotating_light:")
        and alerts[1].startswith(":white_check_mark:")
    )
    assert detail["in_maintenance"] is False
    steps = [a["action"] for a in detail["actions"] if not a["action"].startswith("alert ")]
    assert steps[:4] == ["opened", "maintenance", "maintenance", "LiveKit Cloud agent restart"], steps

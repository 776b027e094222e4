"""Operators in control (issue 28), from the Procfile processes against the stand-in LiveKit: an outage
opens an incident and pages PagerDuty (a stand-in receiver); an operator clicks Acknowledge in Chromium
and PagerDuty gets `acknowledge` with the trigger's `dedup_key`, the incident showing who did it; Restart
now inside the cooldown is refused, saying when it ends; Re-dispatch now on a room page brings its agent,
and a second re-dispatch right after is 409; every action is in the timeline or the log with `by`. One
Warden for all of it, small SLAs."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
from livekit.protocol.agent_dispatch import AgentDispatch

from devtools.simulator.livekit import FakeLiveKit
from devtools.simulator.serving import serve
from tests.support.browser import chromium
from tests.support.processes import run_warden
from tests.support.receiver import receiving
from tests.support.settings import KEY, SECRET
from tests.support.waiting import wait_until
from tests.support.world import AGENT, World, settled

TOKEN = "operator-e2e-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
PD = "/v2/enqueue"
RULES = """
[[rule]]
match = { room = "calm-*" }
agents = ["notetaker"]
join_sla_seconds = 600                 # Warden leaves these to the operator
"""


async def test_an_operator_acknowledges_an_outage_and_redispatches_by_hand_in_chromium(
    tmp_path: Path, redis_url: str
) -> None:
    fake = FakeLiveKit(KEY, SECRET, cloud_agents={"CA_x": AGENT})
    (tmp_path / "rules.toml").write_text(RULES)
    async with (
        serve(fake.app) as livekit_url,
        receiving() as pagerduty,
        httpx.AsyncClient(headers=AUTH) as client,
    ):
        env = {
            "REDIS_URL": redis_url,
            "DATABASE_URL": f"sqlite:///{tmp_path / 'warden.db'}",
            "LIVEKIT_URL": livekit_url,
            "LK_AGENTS_URL": livekit_url,
            "WARDEN_CLOUD_AGENT_ID": "CA_x",
            "WARDEN_AGENT_NAME": AGENT,
            "WARDEN_RULES": str(tmp_path / "rules.toml"),
            "WARDEN_ADMIN_TOKEN": TOKEN,
            "WARDEN_PAGERDUTY_ROUTING_KEY": "pd-routing-key",
            "WARDEN_PAGERDUTY_URL": pagerduty.url + PD,
            "WARDEN_JOIN_SLA_SECONDS": "1",
            "WARDEN_OUTAGE_ROOMS": "1",
            "WARDEN_SWEEP_SECONDS": "1",
        }
        with run_warden(tmp_path, **env) as warden:
            w = World(fake, warden, client)

            def on_dispatch(dispatch: AgentDispatch) -> None:  # the outage's room never gets its agent
                if dispatch.room.startswith("calm-"):
                    joins = w.agent_joins(dispatch.room, f"agent-{dispatch.id}", dispatch_id=dispatch.id)
                    task = asyncio.get_running_loop().create_task(joins)
                    w.tasks.add(task)
                    task.add_done_callback(w.tasks.discard)

            fake.on_dispatch = on_dispatch
            await w.person_joins("calm-1")
            await w.person_joins("outage-1")

            async def paged() -> bool:
                return [r.json()["event_action"] for r in pagerduty.at(PD)] == ["trigger"]

            await wait_until(paged, "PagerDuty paged for the outage")
            (incident,) = (await client.get(f"{warden.url}/api/incidents")).json()["incidents"]
            async with chromium() as browser:
                context = await browser.new_context(http_credentials={"username": "ops", "password": TOKEN})
                page = await context.new_page()
                await page.goto(f"{warden.url}/incidents")
                await page.click(f"article#{incident['id']} button[name=ack]")
                said = await page.inner_text("#said")
                assert said.startswith("acknowledgement queued, as admin"), said

                async def acknowledged() -> bool:
                    return [r.json()["event_action"] for r in pagerduty.at(PD)] == ["trigger", "acknowledge"]

                await wait_until(acknowledged, "PagerDuty's acknowledge")
                await page.goto(f"{warden.url}/incidents")
                shown = await page.inner_text(f"article#{incident['id']} .acknowledged")
                assert shown.startswith("by admin at"), shown
                assert await page.locator(f"article#{incident['id']} button[name=ack]").count() == 0
                await page.click(f"article#{incident['id']} button[name=restart]")
                said = await page.inner_text("#said")
                assert "refused: its deployment was restarted at" in said and "runs until" in said, said

                await page.goto(f"{warden.url}/rooms/calm-1")
                await page.click("tr[data-agent=notetaker] button[name=redispatch]")
                said = await page.inner_text("#said")
                assert said.startswith("re-dispatch queued, as admin"), said
            again = await client.post(f"{warden.url}/api/rooms/calm-1/redispatch", json={"agent": AGENT})
            assert again.status_code == 409, again.text

            async def served() -> bool:
                return settled("agent_active")(await w.room("calm-1"))

            await wait_until(served, "calm-1's agent, re-dispatched by hand")
            timeline = (await w.room("calm-1"))["timeline"]
            detail = (await client.get(f"{warden.url}/api/incidents/{incident['id']}")).json()
    ack = pagerduty.at(PD)[1].json()
    assert ack["dedup_key"] == pagerduty.at(PD)[0].json()["dedup_key"] == incident["id"]
    assert fake.created.count(("calm-1", AGENT)) == 1 and len(fake.live_dispatches("calm-1", AGENT)) == 1
    (asked,) = [e for e in timeline if e["type"] == "redispatch_asked"]
    assert asked["detail"]["by"] == "admin" and asked["detail"]["agent"] == AGENT
    assert detail["acknowledged_by"] == "admin"
    assert ("acknowledged", "by admin") in [(a["action"], a["outcome"]) for a in detail["actions"]]
    assert fake.restarts == ["CA_x"]  # the refused restart restarted nothing

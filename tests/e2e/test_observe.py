"""Observe mode (issue 28) from the Procfile, against the stand-in LiveKit on loopback: a never-joining
agent, first in one room, then in four at once (an outage). Warden, in `WARDEN_MODE=observe` with a
Cloud agent, a deploy hook, a fallback agent, room messages and an alert route configured, decides as it
would act — every room's timeline shows its re-dispatches, each marked not carried out, and the incident
"would restart", once — and the stand-in saw no dispatch, deletion, removal, restart, hook call, room
message or transfer, and the alert route nothing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from devtools.simulator.livekit import FakeLiveKit
from devtools.simulator.serving import serve
from tests.support.processes import run_warden
from tests.support.receiver import receiving
from tests.support.settings import KEY, SECRET
from tests.support.waiting import wait_until
from tests.support.world import AGENT, World

LONELY = "never-joins"
OUTAGE = [f"outage-{i}" for i in range(4)]
READS = {"ListParticipants", "ListDispatch", "ListRooms", "ListAgents"}  # asking changes nothing


def not_carried_out(room: dict[str, Any]) -> list[str]:
    return [
        e["type"]
        for e in room.get("timeline", ())  # none yet: Warden has not heard of the room (404)
        if e["source"] == "action" and (e.get("detail") or {}).get("carried_out") is False
    ]


async def test_observe_mode_decides_records_and_changes_nothing(tmp_path: Path, redis_url: str) -> None:
    fake = FakeLiveKit(KEY, SECRET, cloud_agents={"CA_observed": AGENT})
    async with serve(fake.app) as livekit_url, receiving() as slack, httpx.AsyncClient() as client:
        env = {
            "REDIS_URL": redis_url,
            "DATABASE_URL": f"sqlite:///{tmp_path}/w.db",
            "LIVEKIT_URL": livekit_url,
            "WARDEN_MODE": "observe",
            "WARDEN_AGENT_NAME": AGENT,
            "LK_AGENTS_URL": livekit_url,
            "WARDEN_CLOUD_AGENT_ID": "CA_observed",
            "WARDEN_DEPLOY_HOOK_URL": f"{livekit_url}/deploy-hook",
            "WARDEN_ALERT_WEBHOOK_URL": f"{slack.url}/hook",
            "WARDEN_FALLBACK_AGENT": "apology",
            "WARDEN_NOTIFY_ROOM": "true",
            "WARDEN_JOIN_SLA_SECONDS": "1",
            "WARDEN_SWEEP_SECONDS": "1",
            "WARDEN_OUTAGE_ROOMS": "3",
            "WARDEN_CLAIM_LEASE_SECONDS": "2",  # act mode would take a restart up again this soon
            "WARDEN_RECONCILE_SECONDS": "2",
        }
        with run_warden(tmp_path, **env) as warden:
            w = World(fake, warden, client)
            await w.person_joins(LONELY)

            async def lonely_would_redispatch() -> bool:
                return "Redispatch" in not_carried_out(await w.room(LONELY))

            await wait_until(lonely_would_redispatch, "the lonely room's first re-dispatch (not made)")
            for room in OUTAGE:
                await w.person_joins(room)

            async def every_room_failed() -> bool:
                rooms = [await w.room(room) for room in [LONELY, *OUTAGE]]
                return all(r["recovery"]["state"] == "failed" for r in rooms)

            await wait_until(every_room_failed, "every room failed in observe mode", timeout=20)
            for name in [LONELY, *OUTAGE]:
                room = await w.room(name)
                assert not_carried_out(room).count("Redispatch") == 2, (name, room["timeline"])
                assert "DispatchFallback" in not_carried_out(room)
                # the room's state is the one act mode would have it in: its fallback decided (not made)
                assert room["recovery"]["redispatches"] == 2 and room["state"] == "fallback"

            (incident,) = (await client.get(f"{warden.url}/api/incidents")).json()["incidents"]
            detail = (await client.get(f"{warden.url}/api/incidents/{incident['id']}")).json()
            assert {r["name"] for r in detail["rooms"]} == {LONELY, *OUTAGE}
            would = [a for a in detail["actions"] if a["carried_out"] is False]
            assert [a["outcome"] for a in would if a["action"] == "restart"] == [
                "would restart: LiveKit Cloud agent restart and deploy hook"
            ]
            room_page = (await client.get(f"{warden.url}/rooms/{OUTAGE[0]}")).text
            incidents_page = (await client.get(f"{warden.url}/incidents")).text
            assert "would re-dispatch" in room_page and "would dispatch the fallback agent" in room_page
            assert "would restart" in incidents_page and "(not carried out)" in incidents_page
            assert all("Observe mode" in page for page in (room_page, incidents_page))  # the banner

            # and nothing by hand either: an operator's re-dispatch or restart is refused, saying why
            asked = await client.post(f"{warden.url}/api/rooms/{LONELY}/redispatch", json={"agent": AGENT})
            restart = await client.post(f"{warden.url}/api/incidents/{incident['id']}/restart")
            for answer in (asked, restart):
                assert answer.status_code == 409 and "observe mode" in answer.json()["error"], answer.text

            seen = len(fake.calls)
            await wait_until(  # sweeps past the lease: the incident says "would restart" once still
                lambda: _later(fake, seen), "the worker to go on asking LiveKit", timeout=10
            )
            detail = (await client.get(f"{warden.url}/api/incidents/{incident['id']}")).json()
            assert [a["action"] for a in detail["actions"] if a["carried_out"] is False].count("restart") == 1

        made = sorted({method for method, _ in fake.calls} - READS)
        assert made == [], f"observe mode changed something in LiveKit: {made}"
        assert fake.deploy_hooks == [] and fake.restarts == [] and slack.received == []


async def _later(fake: FakeLiveKit, seen: int) -> bool:
    """Reconciliation (every 2 s) has asked LiveKit twice since `seen` calls: a lease has passed, and
    sweeps have run meanwhile."""
    return [method for method, _ in fake.calls[seen:]].count("ListRooms") >= 2

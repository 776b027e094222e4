"""The seed's outage from the Procfile: a LiveKit Cloud agent asleep after inactivity that never wakes.
Two worker processes race on it; Warden must restart it once, bring every room its agent, and tell
people twice (opened, resolved) through a Slack-compatible webhook served on loopback."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path

import httpx
from livekit.protocol.agent_dispatch import AgentDispatch
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from devtools.simulator.livekit import FakeLiveKit
from devtools.simulator.serving import serve
from tests.support.helpers import agent
from tests.support.processes import run_warden
from tests.support.settings import KEY, SECRET
from tests.support.waiting import wait_until
from tests.support.world import AGENT, World, settled

ROOMS = [f"outage-{i}" for i in range(8)]


def slack(received: list[str]) -> Starlette:
    async def hook(request: Request) -> PlainTextResponse:
        received.append(json.loads(await request.body())["text"])
        return PlainTextResponse("ok")

    return Starlette(routes=[Route("/hook", hook, methods=["POST"])])


def dormant_until_restarted(w: World) -> Callable[[AgentDispatch], None]:
    """Dispatches go unanswered until RestartAgent wakes the deployment; then each agent joins."""
    awake = {"yes": False}
    w.fake.on_restart = lambda _agent_id: awake.update(yes=True)

    def on_dispatch(dispatch: AgentDispatch) -> None:
        if awake["yes"]:
            task = asyncio.get_running_loop().create_task(
                w.agent_joins(dispatch.room, f"agent-{dispatch.id}")
            )
            w.tasks.add(task)
            task.add_done_callback(w.tasks.discard)

    return on_dispatch


async def test_dormant_cloud_agent_is_restarted_once_by_two_racing_workers(
    tmp_path: Path, redis_url: str, database_url: str
) -> None:
    fake = FakeLiveKit(KEY, SECRET, cloud_agents={"CA_sleepy": AGENT})
    alerts: list[str] = []
    async with (
        serve(fake.app) as livekit_url,
        serve(slack(alerts)) as slack_url,
        httpx.AsyncClient() as client,
    ):
        env = {
            "REDIS_URL": redis_url,
            "DATABASE_URL": database_url,  # SQLite, and PostgreSQL: two workers' group commits race on it
            "LIVEKIT_URL": livekit_url,
            "WARDEN_AGENT_NAME": AGENT,
            "LK_AGENTS_URL": livekit_url,
            "WARDEN_CLOUD_AGENT_ID": "CA_sleepy",
            "WARDEN_ALERT_WEBHOOK_URL": f"{slack_url}/hook",
            "WARDEN_JOIN_SLA_SECONDS": "1.5",
            "WARDEN_RESTART_GRACE_SECONDS": "1",
            "WARDEN_SWEEP_SECONDS": "1",
            "WARDEN_OUTAGE_ROOMS": "3",
            "WARDEN_RECONCILE_SECONDS": "1",  # reconciliation racing the webhooks all along
        }
        with run_warden(tmp_path, **env) as warden:
            warden.start("worker")  # a second worker process on the same Redis and database
            w = World(fake, warden, client)
            fake.on_dispatch = dormant_until_restarted(w)
            for room in ROOMS:
                await w.person_joins(room)

            async def all_served() -> bool:
                rooms = [await w.room(room) for room in ROOMS]
                return all(settled("agent_active")(room) for room in rooms)

            try:
                await wait_until(all_served, "every room served after the restart", timeout=60)
            except AssertionError:
                states = {
                    room: (lambda r: (r.get("state"), r.get("recovery")))(await w.room(room))
                    for room in ROOMS
                }
                bad = [r for r, (state, _) in states.items() if state != "agent_active"][:1]
                lines = [
                    (e["type"], e["participant"], e["created_at"], e["received_at"], e.get("detail"))
                    for r in bad
                    for e in (await w.room(r))["timeline"]
                ]
                raise AssertionError(
                    f"timeline of a room not served: {lines}\nnot served: {states}\n"
                    f"created {fake.created}; restarts {fake.restarts}\n"
                    f"{warden.log_text()[-6000:]}"
                ) from None

            async def resolved() -> bool:
                listed = (await client.get(f"{warden.url}/api/incidents")).json()["incidents"]
                return bool(listed) and listed[0]["state"] == "resolved"

            await wait_until(resolved, "the incident resolved")

            async def told_twice() -> bool:  # the resolved alert is sent just after the incident resolves
                return len(alerts) >= 2

            await wait_until(told_twice, "the resolution alert")
            incidents = (await client.get(f"{warden.url}/api/incidents")).json()
            detail = (
                await client.get(f"{warden.url}/api/incidents/{incidents['incidents'][0]['id']}")
            ).json()
            worker_logs = warden.log_text()
    assert fake.restarts == ["CA_sleepy"]
    assert incidents["total"] == 1 and len(detail["rooms"]) == len(ROOMS)
    assert all(r["recovered_at"] for r in detail["rooms"])
    steps = [a["action"] for a in detail["actions"] if not a["action"].startswith("alert ")]
    assert steps[:2] == ["opened", "LiveKit Cloud agent restart"]
    assert (
        len(alerts) == 2
        and alerts[0].startswith(":rotating_light:")
        and alerts[1].startswith(":white_check_mark:")
    )
    for room in ROOMS:
        assert len(fake.live_dispatches(room, AGENT)) == 1, room
    assert "/hook" not in worker_logs and SECRET not in worker_logs  # the alert URL and the key stay secret


SHARED = ["shared-1", "shared-2", "shared-3"]
SHARED_RULES = """
[[rule]]
match = { room = "shared-*" }
agents = ["notetaker", "demo-agent"]
cloud_agent_id = "CA_shared"
"""


async def test_two_agents_of_one_deployment_out_at_once_get_one_restart_and_both_incidents_resolve(
    tmp_path: Path, redis_url: str, database_url: str
) -> None:
    """`make run`'s demo, where two incidents opened in the same millisecond each restarted the one
    deployment: the notetaker and the demo agent run on one LiveKit Cloud agent (`cloud_agent_id` in
    WARDEN_RULES), its workers asleep. One RestartAgent; each incident resolves once its agent is back."""
    fake = FakeLiveKit(KEY, SECRET, cloud_agents={"CA_shared": AGENT})
    (tmp_path / "rules.toml").write_text(SHARED_RULES)
    async with serve(fake.app) as livekit_url, httpx.AsyncClient() as client:
        env = {
            "REDIS_URL": redis_url,
            "DATABASE_URL": database_url,
            "LIVEKIT_URL": livekit_url,
            "LK_AGENTS_URL": livekit_url,
            "WARDEN_RULES": str(tmp_path / "rules.toml"),
            "WARDEN_JOIN_SLA_SECONDS": "1.5",
            "WARDEN_RESTART_GRACE_SECONDS": "1",
            "WARDEN_SWEEP_SECONDS": "1",
            "WARDEN_OUTAGE_ROOMS": "2",
        }
        with run_warden(tmp_path, **env) as warden:
            w = World(fake, warden, client)
            awake = {"yes": False}
            fake.on_restart = lambda _agent_id: awake.update(yes=True)

            def on_dispatch(dispatch: AgentDispatch) -> None:  # each agent's workers, asleep until then
                if awake["yes"]:
                    joins = named_agent_joins(
                        w, dispatch.room, f"{dispatch.agent_name}-{dispatch.id}", dispatch.agent_name
                    )
                    task = asyncio.get_running_loop().create_task(joins)
                    w.tasks.add(task)
                    task.add_done_callback(w.tasks.discard)

            fake.on_dispatch = on_dispatch
            for room in SHARED:
                await w.person_joins(room)

            async def both_back_everywhere() -> bool:
                for room in SHARED:
                    states = {e["agent_name"]: e["state"] for e in (await w.room(room)).get("expected", [])}
                    if states != {AGENT: "agent_active", "demo-agent": "agent_active"}:
                        return False
                return True

            async def both_resolved() -> bool:
                listed = (await client.get(f"{warden.url}/api/incidents")).json()["incidents"]
                return len(listed) == 2 and all(i["state"] == "resolved" for i in listed)

            try:
                await wait_until(both_back_everywhere, "both agents back in every room", timeout=60)
                await wait_until(both_resolved, "both incidents resolved")
            except AssertionError as exc:  # which wait, and the worker's log without its crons' lines
                said = "\n".join(line for line in warden.log_text().splitlines() if "cron:" not in line)
                listed = (await client.get(f"{warden.url}/api/incidents")).json()["incidents"]
                seen = [(i["agent_name"], i["state"], i["opened_at"], i["resolved_at"]) for i in listed]
                raise AssertionError(
                    f"{exc}\nincidents {seen}\nrestarts {fake.restarts}; created {fake.created}\n"
                    f"{said[-12000:]}"
                ) from None
            listed = (await client.get(f"{warden.url}/api/incidents")).json()["incidents"]
    assert fake.restarts == ["CA_shared"]  # one deployment, one restart: not one per agent
    assert sorted(i["agent_name"] for i in listed) == ["demo-agent", AGENT]
    assert all(i["restarted_at"] is not None for i in listed)


async def named_agent_joins(w: World, room: str, who: str, name: str) -> None:
    """An agent of `name` joins and publishes, as its worker would once it runs."""
    w.fake.join(room, who, agent_name=name)
    await w.webhook("participant_joined", room, participant=agent(who, name))
    await w.webhook("track_published", room, participant={"sid": f"PA_{who}", "identity": who})

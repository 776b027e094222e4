"""Every agent a room needs, from the Procfile processes against the stand-in LiveKit: with no agent
configured Warden learns each room's agents from LiveKit's dispatches and re-dispatches the missing one
with the application's metadata; rules give rooms their agents, SIP rooms their own SLA, and each agent
its own deployment to restart: two agents out at once make two incidents, each of its own agent's rooms
only, each resolved when its own agent is back."""

from __future__ import annotations

import asyncio
import json
import math
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from livekit.protocol.agent_dispatch import AgentDispatch

from devtools.simulator.livekit import FakeLiveKit, room_sid
from devtools.simulator.serving import serve
from tests.support.processes import ROOT, run_warden
from tests.support.settings import KEY, SECRET
from tests.support.waiting import wait_until
from tests.support.world import World

SLA = {"WARDEN_JOIN_SLA_SECONDS": "1.5", "WARDEN_REJOIN_SLA_SECONDS": "2", "WARDEN_SWEEP_SECONDS": "1"}


@dataclass
class Agents(World):
    """The e2e world with agents told apart by name: Warden's dispatches are answered per agent
    (`answers`), the application's own (`app_dispatch`) never are: their workers are not there."""

    answers: Callable[[AgentDispatch], bool] = lambda dispatch: True
    app_made: set[str] = field(default_factory=set)
    by_app: bool = False

    async def named_agent_joins(self, room: str, who: str, name: str, dispatch_id: str = "") -> None:
        await self.agent_joins(room, who, publish=True, dispatch_id=dispatch_id, name=name)

    def on_dispatch(self, dispatch: AgentDispatch) -> None:
        if self.by_app or not self.answers(dispatch):
            return
        work = self.named_agent_joins(dispatch.room, f"agent-{dispatch.id}", dispatch.agent_name, dispatch.id)
        task = asyncio.get_running_loop().create_task(work)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def app_dispatch(self, room: str, name: str, **kw: Any) -> AgentDispatch:
        self.by_app = True
        try:
            made = self.fake.create_dispatch(room, name, **kw)
        finally:
            self.by_app = False
        self.app_made.add(made.id)
        return made

    def dispatches(self, room: str, name: str) -> list[AgentDispatch]:
        return self.fake.live_dispatches(room, name)


@pytest.fixture
async def agents(tmp_path: Path, redis_url: str, request: pytest.FixtureRequest) -> AsyncIterator[Agents]:
    fake = FakeLiveKit(KEY, SECRET, cloud_agents={"CA_assistant": "assistant", "CA_notes": "notetaker"})
    extra: dict[str, str] = getattr(request, "param", {})
    async with serve(fake.app) as livekit_url, httpx.AsyncClient() as client:
        env = {
            "REDIS_URL": redis_url,
            "DATABASE_URL": f"sqlite:///{tmp_path}/w.db",
            "LIVEKIT_URL": livekit_url,
            "LK_AGENTS_URL": livekit_url,
            **SLA,
            **extra,
        }
        if "rules" in extra:
            (tmp_path / "rules.toml").write_text(env.pop("rules"))
            env["WARDEN_RULES"] = str(tmp_path / "rules.toml")
        with run_warden(tmp_path, **env) as warden:
            w = Agents(fake, warden, client)
            fake.on_dispatch = w.on_dispatch
            yield w


async def patiently(w: Agents, check: Callable[[], Any], what: str, rooms: tuple[str, ...]) -> None:
    """`wait_until`, saying on a timeout what the rooms and Warden's logs looked like."""
    try:
        await wait_until(check, what, timeout=45)
    except AssertionError:
        states = {r: (await w.room(r)) for r in rooms}
        brief = {
            r: (s.get("expected"), [e["type"] for e in s.get("timeline", [])]) for r, s in states.items()
        }
        raise AssertionError(
            f"{what}: {brief}\ncreated {w.fake.created}\n{w.warden.log_text()[-4000:]}"
        ) from None


def expected(room: dict[str, Any]) -> dict[str, tuple[str, list[str]]]:
    return {e["agent_name"]: (e["state"], e["sources"]) for e in room.get("expected", [])}


async def test_zero_config_learns_each_rooms_agents_and_brings_only_the_missing_ones(agents: Agents) -> None:
    w = agents
    # the app dispatched one agent with metadata and attributes; its worker never picked it up
    w.app_dispatch("z-app", "assistant", metadata='{"lang":"fr"}', attributes={"team": "blue"})
    # two agents: the assistant came, the notetaker did not
    w.app_dispatch("z-two", "assistant")
    w.app_dispatch("z-two", "notetaker", metadata='{"doc":"42"}')
    # no agent at all: nothing is expected
    # an avatar speaking for an agent is not the agent
    w.app_dispatch("z-avatar", "assistant")
    for room in ("z-app", "z-two", "z-none", "z-avatar"):
        await w.person_joins(room)
    await w.named_agent_joins("z-two", "agent-AJ_a", "assistant")
    await w.tell("z-avatar", w.fake.join("z-avatar", "avatar-1", on_behalf="agent-AJ_gone"))

    async def served() -> bool:
        rooms = {r: expected(await w.room(r)) for r in ("z-app", "z-two", "z-avatar")}
        return (
            rooms["z-app"].get("assistant", ("",))[0] == "agent_active"
            and rooms["z-two"].get("notetaker", ("",))[0] == "agent_active"
            and rooms["z-avatar"].get("assistant", ("",))[0] == "agent_active"
        )

    await patiently(w, served, "every expected agent there", ("z-app", "z-two", "z-avatar"))
    assert sorted(w.fake.created) == [
        ("z-app", "assistant"),
        ("z-avatar", "assistant"),
        ("z-two", "notetaker"),
    ]
    (redispatched,) = [d for d in w.dispatches("z-app", "assistant") if d.id not in w.app_made]
    assert (redispatched.metadata, dict(redispatched.attributes)) == ('{"lang":"fr"}', {"team": "blue"})
    assert [d.metadata for d in w.dispatches("z-two", "notetaker")] == ['{"doc":"42"}']  # the stale one went
    two = await w.room("z-two")
    assert expected(two) == {
        "assistant": ("agent_active", ["dispatch"]),
        "notetaker": ("agent_active", ["dispatch"]),
    }
    assert [e["detail"] for e in two["timeline"] if e["type"] == "Expect"] == [
        {"agent": "assistant", "source": "dispatch", "carried_out": True},
        {"agent": "notetaker", "source": "dispatch", "carried_out": True},
    ]
    none = await w.room("z-none")
    assert (none["expects"], none["expected"]) == ("learned", [])
    assert ("ListDispatch", "z-none") in w.fake.calls and not any(r == "z-none" for r, _ in w.fake.created)
    assert len(w.dispatches("z-two", "assistant")) == 1  # the agent that came was left alone


@pytest.mark.parametrize("agents", [{"WARDEN_RECONCILE_SECONDS": "1"}], indirect=True)
async def test_zero_config_learns_a_dispatch_made_later_and_re_dispatches_it_only_when_unserved(
    agents: Agents,
) -> None:
    """Issue 23, time compressed (join SLA 1.5 s, reconciliation every second): two meetings with their
    assistant; some seconds in, the app adds a notetaker to each, served in one room only."""
    w = agents
    rooms = ("late-never", "late-served")
    for room in rooms:
        w.app_dispatch(room, "assistant")
        await w.person_joins(room)
        await w.named_agent_joins(room, f"agent-AJ_{room}", "assistant")

    async def states(agent: str) -> list[str]:
        return [expected(await w.room(r)).get(agent, ("",))[0] for r in rooms]

    async def assistants_learned() -> bool:
        return await states("assistant") == ["agent_active"] * 2

    await patiently(w, assistants_learned, "each room's assistant learned", rooms)
    await asyncio.sleep(1.5)  # the room goes on
    w.app_dispatch("late-never", "notetaker")  # its worker never takes it
    served = w.app_dispatch("late-served", "notetaker")
    await w.named_agent_joins("late-served", "agent-AJ_notes", "notetaker", served.id)

    async def notetakers_there() -> bool:
        return await states("notetaker") == ["agent_active"] * 2

    await patiently(w, notetakers_there, "each room's notetaker learned and there", rooms)
    assert w.fake.created == [("late-never", "notetaker")]  # the served one left alone, no assistant
    never = await w.room("late-never")
    assert expected(never)["notetaker"] == ("agent_active", ["dispatch"])
    (notetaker,) = [e for e in never["expected"] if e["agent_name"] == "notetaker"]
    assert notetaker["recovery"]["redispatches"] == 1
    assert notetaker["recovery"]["dispatch_id"] == w.dispatches("late-never", "notetaker")[0].id


RULES = """
[[rule]]
match = { sip = true }
agents = ["receptionist"]
join_sla_seconds = 1

[[rule]]
match = { room = "support-*" }
agents = ["assistant", "notetaker"]
max_redispatches = 1
join_sla_seconds = 2

[[rule]]
match = { room = "support-*" }
agents = ["notetaker"]
cloud_agent_id = "CA_notes"
"""


@pytest.mark.parametrize(
    "agents",
    [
        {
            "rules": RULES,
            "WARDEN_JOIN_SLA_SECONDS": "30",
            "WARDEN_CLOUD_AGENT_ID": "CA_assistant",
            "WARDEN_OUTAGE_ROOMS": "2",
            "WARDEN_RESTART_GRACE_SECONDS": "1",
        }
    ],
    indirect=True,
)
async def test_rules_sip_rooms_and_one_agents_outage_restarting_its_own_deployment(agents: Agents) -> None:
    w = agents
    awake = {"notetaker": False}
    w.fake.on_restart = lambda agent_id: awake.update(notetaker=awake["notetaker"] or agent_id == "CA_notes")
    w.answers = lambda d: d.agent_name != "notetaker" or awake["notetaker"]  # the notetakers' fleet is down
    for room in ("support-1", "support-2"):
        await w.person_joins(room)
        await w.named_agent_joins(room, f"agent-AJ_{room}", "assistant")
    number = "+15550100123"
    sip_room = f"call-_{number}_x1"
    await w.tell(sip_room, w.fake.join(sip_room, f"sip_{number}", caller=number))
    # Numbers written with separators, in a room that expects no agent (no SLA of its own to miss).
    dashed_room, dashed_person = "call-15550199-dashed", "phone-1-555-010-0199"
    await w.tell(dashed_room, w.fake.join(dashed_room, dashed_person))  # its sid opaque, as LiveKit's

    async def sip_served() -> bool:
        return expected(await w.room(sip_room)).get("receptionist", ("",))[0] == "agent_active"

    await patiently(
        w, sip_served, "the caller's agent, on the SIP rule's 1-second SLA", (room_sid(sip_room),)
    )

    async def notetakers_back() -> bool:
        rooms = [expected(await w.room(r)) for r in ("support-1", "support-2")]
        return all(r.get("notetaker", ("",))[0] == "agent_active" for r in rooms)

    await patiently(
        w, notetakers_back, "the notetakers, after their deployment's restart", ("support-1", "support-2")
    )
    assert w.fake.restarts == ["CA_notes"]  # the assistant's deployment (CA_assistant) left alone
    incidents = (await w.client.get(f"{w.warden.url}/api/incidents")).json()["incidents"]
    assert {i["agent_name"] for i in incidents} == {"notetaker"}
    sip = (await w.client.get(f"{w.warden.url}/api/rooms/{room_sid(sip_room)}")).json()
    assert sip["sip"] is True and sip["name"] == "call-_•••0123_x1"
    everything = json.dumps(sip) + (await w.client.get(f"{w.warden.url}/api/rooms")).text
    everything += (await w.client.get(f"{w.warden.url}/rooms/{room_sid(sip_room)}")).text
    dashed = (await w.client.get(f"{w.warden.url}/api/rooms/{room_sid(dashed_room)}")).json()
    assert dashed["name"] == "call-•••0199-dashed" and dashed["people"][0]["identity"] == "phone-•••0199"
    everything += (
        json.dumps(dashed) + (await w.client.get(f"{w.warden.url}/rooms/{room_sid(dashed_room)}")).text
    )
    for needle in ("5550100123", "15550199", "555-010-0199"):
        leaks = [everything[max(0, i - 120) : i + 40] for i in _all(everything, needle)]
        assert leaks == []
        assert needle not in w.warden.log_text()


TWO_DEPLOYMENTS = """
[[rule]]
match = { room = "assist-*" }
agents = ["assistant"]
cloud_agent_id = "CA_assistant"

[[rule]]
match = { room = "notes-*" }
agents = ["notetaker"]
cloud_agent_id = "CA_notes"
"""
DEPLOYMENT = {"assistant": "CA_assistant", "notetaker": "CA_notes"}
ROOMS_OF = {"assistant": {"assist-1", "assist-2", "assist-3"}, "notetaker": {"notes-1", "notes-2", "notes-3"}}


@pytest.mark.parametrize(
    "agents",
    [{"rules": TWO_DEPLOYMENTS, "WARDEN_OUTAGE_ROOMS": "2", "WARDEN_RESTART_GRACE_SECONDS": "30"}],
    indirect=True,
)
async def test_two_agents_out_at_once_each_incident_holds_and_resolves_with_its_own_rooms(
    agents: Agents,
) -> None:
    w = agents
    # Both fleets are down: a dispatch is answered only while its agent's deployment runs. The
    # assistant's runs again 2 s after its restart; the notetaker's when this test says so.
    w.fake.restart_takes.update(CA_assistant=2.0, CA_notes=math.inf)
    w.answers = lambda d: time.time() >= w.fake.back_at.get(DEPLOYMENT[d.agent_name], math.inf)
    everywhere = tuple(sorted(ROOMS_OF["assistant"] | ROOMS_OF["notetaker"]))
    for room in everywhere:
        await w.person_joins(room)

    async def incident(agent: str) -> dict[str, Any]:
        listed = (await w.client.get(f"{w.warden.url}/api/incidents")).json()["incidents"]
        mine = [i for i in listed if i["agent_name"] == agent]
        if len(mine) != 1:
            return {"state": "none", "rooms": [], "actions": [], "listed": len(mine)}
        return dict((await w.client.get(f"{w.warden.url}/api/incidents/{mine[0]['id']}")).json())

    def rooms(found: dict[str, Any]) -> set[str]:
        return {r["name"] for r in found["rooms"]}

    async def fresh_started(agent: str) -> bool:
        return any(a["action"] == "re-dispatch" for a in (await incident(agent))["actions"])

    async def resolved(agent: str) -> bool:
        return (await incident(agent))["state"] == "resolved"

    await patiently(w, lambda: fresh_started("assistant"), "the assistant restarted", everywhere)
    assert rooms(await incident("assistant")) <= ROOMS_OF["assistant"]  # no room waiting for the notetaker
    await patiently(w, lambda: resolved("assistant"), "the assistant's incident resolved", everywhere)
    notes = await incident("notetaker")
    assert notes["state"] == "open" and rooms(notes) <= ROOMS_OF["notetaker"]
    assert rooms(await incident("assistant")) == ROOMS_OF["assistant"]
    notetakers = [expected(await w.room(r))["notetaker"][0] for r in sorted(ROOMS_OF["notetaker"])]
    assert "agent_active" not in notetakers  # resolved while the notetakers were still missing

    w.fake.back_at["CA_notes"] = time.time()  # the notetakers' deployment runs again
    await patiently(w, lambda: resolved("notetaker"), "the notetaker's incident resolved", everywhere)
    assert rooms(await incident("notetaker")) == ROOMS_OF["notetaker"]
    assert sorted(w.fake.restarts) == ["CA_assistant", "CA_notes"]
    for name, its_rooms in ROOMS_OF.items():
        for room in its_rooms:
            assert expected(await w.room(room))[name][0] == "agent_active", (name, room)


def _all(text: str, needle: str) -> list[int]:
    found, at = [], text.find(needle)
    while at >= 0:
        found.append(at)
        at = text.find(needle, at + 1)
    return found


def test_a_bad_rules_file_stops_the_worker_naming_the_rule_and_key(tmp_path: Path) -> None:
    rules = tmp_path / "rules.toml"
    rules.write_text('[[rule]]\nmatch = { room = "support-*" }\njoin_sla_seconds = "fast"\n')
    env = {"LIVEKIT_API_KEY": KEY, "LIVEKIT_API_SECRET": SECRET, "LIVEKIT_URL": "http://127.0.0.1:1"}
    done = subprocess.run(
        [sys.executable, "-m", "workers"],
        env={"PATH": "/usr/bin:/bin", **env, "WARDEN_RULES": str(rules)},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert f"WARDEN_RULES ({rules}): rule 1, join_sla_seconds" in done.stderr

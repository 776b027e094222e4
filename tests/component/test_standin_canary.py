"""The stand-in LiveKit's side of canaries (issue 25), asked through the real livekit-api client over HTTP on
a clock the test moves: `CreateRoom` and `DeleteRoom` with the webhooks livekit-server v1.13.5 sends (lab
run `/work/lk-lab/results/20261207-canary-rooms`), the server closing a created room left empty, a dispatch
into a created room bringing its agent, and a deployment that falls asleep after a quiet spell, swallows
dispatches, and answers again once restarted (Cloud `RestartAgent`, or the deploy hook)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from livekit.api import CreateAgentDispatchRequest, ListParticipantsRequest, LiveKitAPI, TwirpError
from livekit.protocol.agent import JobStatus
from livekit.protocol.agent_dispatch import AgentDispatch, RoomAgentDispatch
from livekit.protocol.cloud_agent import RestartAgentRequest
from livekit.protocol.models import ParticipantInfo, Room
from livekit.protocol.room import CreateRoomRequest, DeleteRoomRequest, ListRoomsRequest

from devtools.simulator.livekit import (
    DEPARTURE_TIMEOUT,
    EMPTY_TIMEOUT,
    JOB_LISTING_LAG,
    FakeLiveKit,
    ManualClock,
)
from devtools.simulator.plan import Outage, parse_failures
from devtools.simulator.scenarios import SLEEPY_AGENT_ID, sleepy
from devtools.simulator.world import Simulation
from tests.support.settings import KEY, SECRET
from tests.support.standin import served
from workers.adapters.cloud import CloudAgents

T0 = 1_767_225_600.0
EPS = 0.01
CANARY = "warden-canary-notetaker-1"
METADATA = '{"warden_canary": true}'


@dataclass
class Standin:
    fake: FakeLiveKit
    clock: ManualClock
    api: LiveKitAPI
    url: str

    def at(self, seconds: float) -> None:
        self.clock.now = T0 + seconds

    async def create(self, name: str = CANARY, **fields: Any) -> Room:
        return await self.api.room.create_room(CreateRoomRequest(name=name, **fields))

    async def delete(self, name: str = CANARY) -> None:
        await self.api.room.delete_room(DeleteRoomRequest(room=name))

    async def listed(self, name: str = CANARY) -> list[Room]:
        return list((await self.api.room.list_rooms(ListRoomsRequest(names=[name]))).rooms)

    async def dispatch(self, room: str = CANARY, name: str = "notetaker") -> AgentDispatch:
        request = CreateAgentDispatchRequest(room=room, agent_name=name, metadata=METADATA)
        return await self.api.agent_dispatch.create_dispatch(request)

    async def agents(self, room: str = CANARY) -> list[ParticipantInfo]:
        listed = await self.api.room.list_participants(ListParticipantsRequest(room=room))
        return [p for p in listed.participants if p.kind == ParticipantInfo.AGENT]

    def sent(self, room: str = CANARY) -> list[tuple[str, str]]:
        """The webhooks the stand-in sent in `room`: (event, disconnect reason or identity)."""
        return [(e, _who(f)) for _, e, r, f in self.fake.webhooks if r == room]


def _who(fields: dict[str, Any]) -> str:
    participant = fields.get("participant", {})
    return str(participant.get("disconnectReason") or participant.get("identity", ""))


@pytest.fixture
async def lk() -> AsyncIterator[Standin]:
    async with served(T0) as (fake, clock, api, url):
        yield Standin(fake, clock, api, url)


async def test_create_room_starts_it_at_once_and_lists_it_with_its_settings(lk: Standin) -> None:
    made = await lk.create(empty_timeout=30, departure_timeout=2, metadata="m1")
    assert lk.sent() == [("room_started", "")]
    assert (made.name, made.empty_timeout, made.departure_timeout, made.metadata) == (CANARY, 30, 2, "m1")
    assert made.creation_time == int(T0)
    ((listed,),) = [await lk.listed()]
    assert (listed.sid, listed.empty_timeout, listed.metadata) == (made.sid, 30, "m1")
    assert [d.agent_name for d in await lk.api.agent_dispatch.list_dispatch(CANARY)] == [""]  # automatic
    again = await lk.create(empty_timeout=60, metadata="m2")  # the same room, unchanged, no webhook
    assert (again.sid, again.empty_timeout, again.metadata) == (made.sid, 30, "m1")
    assert lk.sent() == [("room_started", "")]
    defaults = await lk.create("plain")
    assert (defaults.empty_timeout, defaults.departure_timeout) == (EMPTY_TIMEOUT, DEPARTURE_TIMEOUT)


async def test_a_dispatch_into_a_created_room_brings_its_agent_with_the_job_metadata(lk: Standin) -> None:
    worker = lk.fake.add_worker("notetaker")
    await lk.create(empty_timeout=60)
    made = await lk.dispatch()
    lk.at(1.2 + EPS)  # accepted at 0.2, connected a second later
    (agent,) = await lk.agents()
    assert agent.attributes["lk.agent_name"] == "notetaker" and agent.identity.startswith("agent-AJ_")
    assert lk.sent() == [
        ("room_started", ""),
        ("participant_joined", agent.identity),
        ("track_published", agent.identity),
    ]
    lk.at(0.2 + JOB_LISTING_LAG + EPS)
    (listed,) = [d for d in await lk.api.agent_dispatch.list_dispatch(CANARY) if d.id == made.id]
    (job,) = listed.state.jobs
    assert (job.metadata, job.agent_name, job.state.status) == (METADATA, "notetaker", JobStatus.JS_RUNNING)
    assert (job.state.participant_identity, job.state.worker_id) == (agent.identity, worker.id)


async def test_create_room_with_agents_dispatches_them_instead_of_the_automatic_one(lk: Standin) -> None:
    lk.fake.add_worker("notetaker")
    await lk.create(agents=[RoomAgentDispatch(agent_name="notetaker", metadata=METADATA)])
    (made,) = await lk.api.agent_dispatch.list_dispatch(CANARY)
    assert (made.agent_name, made.metadata) == ("notetaker", METADATA)
    lk.at(2)
    assert [a.attributes["lk.agent_name"] for a in await lk.agents()] == ["notetaker"]


async def test_delete_room_takes_everyone_out_then_finishes_it(lk: Standin) -> None:
    lk.fake.add_worker("notetaker")
    await lk.create(empty_timeout=60)
    await lk.dispatch()
    lk.at(2)
    (agent,) = await lk.agents()
    await lk.delete()
    assert lk.sent()[-3:] == [
        ("track_unpublished", agent.identity),
        ("participant_left", "ROOM_DELETED"),
        ("room_finished", ""),
    ]
    assert await lk.listed() == [] and await lk.agents() == []
    lk.at(120)  # nothing of the room's comes back (its timers see it gone)
    assert lk.sent()[-1] == ("room_finished", "") and await lk.listed() == []


async def test_delete_room_of_a_room_the_server_does_not_have_is_a_404(lk: Standin) -> None:
    with pytest.raises(TwirpError) as unknown:
        await lk.delete("nowhere")
    assert (unknown.value.status, unknown.value.code) == (404, "not_found")
    await lk.create()
    await lk.delete()
    with pytest.raises(TwirpError) as again:  # a room just deleted: the same
        await lk.delete()
    assert again.value.status == 404
    lk.fake.join("joined", "alice")  # a room started by a join is deleted as well
    await lk.delete("joined")
    assert lk.sent("joined")[-2:] == [("participant_left", "ROOM_DELETED"), ("room_finished", "")]


async def test_a_created_room_nobody_joins_closes_after_its_empty_timeout_even_with_its_agent(
    lk: Standin,
) -> None:
    await lk.create("empty", empty_timeout=3)
    lk.at(3 - EPS)
    assert [r.name for r in await lk.listed("empty")] == ["empty"]
    lk.at(3 + EPS)
    assert await lk.listed("empty") == [] and lk.sent("empty") == [
        ("room_started", ""),
        ("room_finished", ""),
    ]
    lk.fake.add_worker("notetaker")  # an agent does not keep the room open (the lab: closed at 8 s)
    await lk.create(empty_timeout=8)
    await lk.dispatch()
    lk.at(3 + 2)
    assert len(await lk.agents()) == 1
    lk.at(3 + 8 + EPS)
    assert await lk.listed() == []
    assert lk.sent()[-2:] == [("participant_left", "ROOM_CLOSED"), ("room_finished", "")]


async def test_a_created_room_closes_departure_timeout_after_the_last_person_left(lk: Standin) -> None:
    await lk.create(empty_timeout=5, departure_timeout=2)
    lk.fake.join(CANARY, "alice")
    lk.at(30)  # a person is in: the room stays, past its empty timeout
    assert len(await lk.listed()) == 1
    lk.fake.leave(CANARY, "alice")
    lk.at(32 - EPS)
    assert len(await lk.listed()) == 1
    lk.at(32 + EPS)
    assert await lk.listed() == [] and lk.sent()[-1] == ("room_finished", "")
    lk.fake.join("plain", "bob")  # a room not created by CreateRoom is closed by the test, as before
    lk.fake.leave("plain", "bob")
    lk.at(600)
    assert [r.name for r in await lk.listed("plain")] == ["plain"]


async def test_a_sleeping_deployment_swallows_dispatches_until_restarted_then_answers(lk: Standin) -> None:
    deployment = sleepy(lk.fake, "notetaker", quiet=600)
    cloud = CloudAgents(lk.url, KEY, SECRET)
    try:
        await lk.create("morning-0", empty_timeout=60)
        await lk.dispatch("morning-0")
        lk.at(2)
        assert len(await lk.agents("morning-0")) == 1 and await cloud.running("notetaker") is True
        lk.at(601)  # a quiet night: 600 s without a dispatch since the last one (at 0)
        assert await cloud.running("notetaker") is False  # listed Sleeping, no replicas
        await lk.create(empty_timeout=60)
        swallowed = await lk.dispatch()
        lk.at(601 + 30)
        assert await lk.agents() == []
        (listed,) = [d for d in await lk.api.agent_dispatch.list_dispatch(CANARY) if d.id == swallowed.id]
        assert list(listed.state.jobs) == []  # accepted, never taken: no worker of a dormant deployment
        assert deployment.swallowed == [swallowed.id] and lk.fake.swallowed(swallowed.id)
        await cloud.restart("notetaker")  # what Warden's escalation does
        assert lk.fake.restarts == [SLEEPY_AGENT_ID] and await cloud.running("notetaker") is True
        answered = await lk.dispatch()
        lk.at(631 + 2)
        assert len(await lk.agents()) == 1 and not lk.fake.swallowed(answered.id)
        old = [d for d in await lk.api.agent_dispatch.list_dispatch(CANARY) if d.id == swallowed.id]
        assert [list(d.state.jobs) for d in old] == [[]]  # never offered again (the open-source server)
        lk.at(631 + 600 - EPS)  # its quiet spell starts afresh at the restart
        assert lk.fake.asleep("notetaker") is False
        lk.at(631 + 600 + EPS)
        assert lk.fake.asleep("notetaker") is True
    finally:
        await cloud.aclose()


async def test_the_deploy_hook_wakes_a_sleeping_deployment(lk: Standin) -> None:
    sleepy(lk.fake, "notetaker", quiet=10)
    lk.at(20)
    await lk.create(empty_timeout=60)
    await lk.dispatch()
    lk.at(30)
    assert await lk.agents() == []
    async with httpx.AsyncClient() as client:  # Warden's deploy-hook body: {agent_name, reason, ...}
        hook = {"agent_name": "notetaker", "reason": "canary", "rooms": [], "incident_id": 1}
        answer = await client.post(f"{lk.url}/deploy-hook", json=hook)
        assert answer.status_code == 202
        assert (await client.post(f"{lk.url}/deploy-hook", content=b"{}")).status_code == 400
    assert lk.fake.deploy_hooks == ["notetaker"] and lk.fake.asleep("notetaker") is False
    await lk.dispatch()
    lk.at(32)
    assert len(await lk.agents()) == 1


async def test_a_deployment_that_sleeps_once_stays_awake_after_its_restart(lk: Standin) -> None:
    sleepy(lk.fake, "notetaker", quiet=10, sleeps=1)
    lk.at(11)
    assert lk.fake.asleep("notetaker") is True
    assert lk.fake.redeploy("notetaker") and not lk.fake.redeploy("nobody")
    lk.at(100)
    await lk.create(empty_timeout=60)
    await lk.dispatch()
    lk.at(102)
    assert lk.fake.asleep("notetaker") is False and len(await lk.agents()) == 1


def test_the_simulation_plan_takes_a_quiet_spell_and_a_sleepy_deployment() -> None:
    plan = parse_failures("never-joins:0.1,quiet:90+60,sleepy:15")
    assert (plan.quiet, plan.sleepy, plan.sleeps, plan.outage) == (Outage(90, 60), 15.0, None, None)
    assert (parse_failures("sleepy:15x1").sleepy, parse_failures("sleepy:15x1").sleeps) == (15.0, 1)
    for wrong in ("sleepy:0", "sleepy:soon", "sleepy:15x0", "sleepy:15x", "quiet:90", "quiet:-1+5"):
        with pytest.raises(ValueError):
            parse_failures(wrong)


async def test_the_simulation_brings_no_agent_while_its_deployment_sleeps_and_says_so() -> None:
    """`make run`'s demo: the simulated application's agent (scripted by `Simulation`, not a worker) is
    swallowed too while its deployment sleeps, canary rooms included, and comes again after RestartAgent."""
    clock, said, posted = ManualClock(T0), [], []
    fake = FakeLiveKit(KEY, SECRET, clock=clock, cloud_agents={"CA_simulated": "demo-agent"})

    def answer(request: httpx.Request) -> httpx.Response:
        posted.append(json.loads(request.content)["event"])
        return httpx.Response(200)

    async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as client:
        plan = parse_failures("sleepy:15")
        sim = Simulation(
            fake, client, "http://warden/webhook", "demo-agent", plan, agent_delay=(0, 0), say=said.append
        )
        clock.now = T0 + 16
        fake._CreateRoom(CreateRoomRequest(name=CANARY))
        asleep = fake.create_dispatch(CANARY, "demo-agent", metadata=METADATA)
        await asyncio.gather(*sim._tasks)
        assert fake.agents_in(CANARY) == [] and sim.finish().swallowed == 1
        assert said == [
            f"demo-agent's deployment fell asleep after 15 s without a dispatch: {asleep.id} in {CANARY} is "
            "not answered (nor any until it is restarted)"
        ]
        fake.create_dispatch(CANARY, "demo-agent")  # told once a sleep
        fake._RestartAgent(RestartAgentRequest(agent_id="CA_simulated"))
        fake.create_dispatch(CANARY, "demo-agent")
        await asyncio.gather(*sim._tasks)
        await fake.on_webhook.sent()  # type: ignore[union-attr]
        assert len(fake.agents_in(CANARY)) == 1 and len(said) == 2 and said[1].startswith("RestartAgent")
        assert posted == ["room_started", "participant_joined", "track_published"]

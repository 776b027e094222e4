"""The stand-in LiveKit's TransferSIPParticipant, SendData and RemoveParticipant of an agent answer as
livekit-server v1.13.5 does (checked against the lab's server: issue 27), asked through the real
livekit-api client over HTTP, on a clock the test moves: a transferred caller leaves the room a moment
after the answer with CLIENT_INITIATED, only SIP callers can be transferred, and only with the `sip.call`
grant; messages reach the room in order; a fallback agent removed leaves with PARTICIPANT_REMOVED."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import httpx
import pytest
from livekit.api import (
    AccessToken,
    CreateAgentDispatchRequest,
    LiveKitAPI,
    SipCallError,
    TwirpError,
    VideoGrants,
)
from livekit.api.twirp_client import TwirpClient
from livekit.protocol.models import DataPacket
from livekit.protocol.room import RoomParticipantIdentity, SendDataRequest
from livekit.protocol.sip import (
    SIPTransferStatus,
    TransferSIPParticipantRequest,
    TransferSIPParticipantResponse,
)

from devtools.simulator.livekit import TRANSFER_HANGUP, FakeLiveKit, ManualClock
from devtools.simulator.plan import parse_failures
from devtools.simulator.scenarios import abandoned_call
from devtools.simulator.world import Simulation
from tests.support.settings import KEY, SECRET
from tests.support.standin import served

T0 = 1_767_225_600.0
EPS = 0.01
NUMBER = "+15550100123"
CALLER = f"sip_{NUMBER}"
DESK = "tel:+15550100"


@dataclass
class Standin:
    fake: FakeLiveKit
    clock: ManualClock
    api: LiveKitAPI
    url: str

    def at(self, seconds: float) -> None:
        self.clock.now = T0 + seconds

    async def transfer(self, room: str, identity: str, to: str = DESK) -> TransferSIPParticipantResponse:
        request = TransferSIPParticipantRequest(
            room_name=room, participant_identity=identity, transfer_to=to, play_dialtone=True
        )
        return await self.api.sip.transfer_sip_participant(request)

    async def dispatch_fallback(self, room: str, name: str = "apology") -> None:
        await self.api.agent_dispatch.create_dispatch(CreateAgentDispatchRequest(room=room, agent_name=name))

    async def say(self, room: str, notice: dict[str, Any], *to: str) -> None:
        data = SendDataRequest(
            room=room,
            data=_json(notice),
            kind=DataPacket.Kind.RELIABLE,
            topic="warden.status",
            destination_identities=list(to),
        )
        await self.api.room.send_data(data)

    def sent(self, room: str) -> list[tuple[str, str, str]]:
        return [
            (event, fields.get("participant", {}).get("identity", ""), _reason(fields))
            for _, event, r, fields in self.fake.webhooks
            if r == room
        ]


def _json(value: dict[str, Any]) -> bytes:
    return json.dumps(value).encode()


def _reason(fields: dict[str, Any]) -> str:
    return str(fields.get("participant", {}).get("disconnectReason", ""))


@pytest.fixture
async def lk() -> AsyncIterator[Standin]:
    async with served(T0) as (fake, clock, api, url):
        yield Standin(fake, clock, api, url)


async def test_a_transferred_caller_leaves_the_room_a_moment_after_the_answer(lk: Standin) -> None:
    lk.fake.join("call", CALLER, caller=NUMBER)
    lk.fake.publish("call", CALLER)
    answer = await lk.transfer("call", CALLER)
    assert (
        answer.status == SIPTransferStatus.STS_TRANSFER_ONGOING
    )  # v1.13.5 answers an empty body: not a failure
    assert lk.fake.transferred() == [("call", CALLER, DESK)]
    assert lk.fake.transfers[0].play_dialtone
    assert CALLER in lk.fake.rooms["call"]  # the bridge hangs up after the answer
    await lk.transfer("call", CALLER)  # asked again for the same call and target: the same answer
    with pytest.raises(TwirpError) as elsewhere:
        await lk.transfer("call", CALLER, "sip:desk@example.com")
    assert (elsewhere.value.status, elsewhere.value.message) == (
        400,
        "call already being transferred elsewhere",
    )
    lk.at(TRANSFER_HANGUP + EPS)
    assert CALLER not in lk.fake.rooms["call"]
    assert lk.sent("call") == [
        ("track_unpublished", CALLER, ""),
        ("participant_left", CALLER, "CLIENT_INITIATED"),
    ]
    assert lk.fake.transferred() == [("call", CALLER, DESK)]  # once
    with pytest.raises(TwirpError) as gone:
        await lk.transfer("call", CALLER)
    assert (gone.value.status, gone.value.message) == (404, "participant does not exist")


async def test_only_a_sip_caller_in_the_room_can_be_transferred(lk: Standin) -> None:
    lk.fake.join("web", "alice")
    lk.fake.join("web", "agent-1", agent_name="apology")
    for room, identity, status, message in [
        ("web", "alice", 400, "no SIP session associated with participant"),
        ("web", "agent-1", 400, "no SIP session associated with participant"),
        ("web", "bob", 404, "participant does not exist"),
        ("gone", CALLER, 404, "participant does not exist"),
    ]:
        with pytest.raises(TwirpError) as refused:
            await lk.transfer(room, identity)
        assert (refused.value.status, refused.value.message) == (status, message)
    assert lk.fake.transfers == [] and sorted(lk.fake.rooms["web"]) == ["agent-1", "alice"]


async def test_a_transfer_needs_the_sip_call_grant_besides_room_admin(lk: Standin) -> None:
    lk.fake.join("call", CALLER, caller=NUMBER)
    request = TransferSIPParticipantRequest(room_name="call", participant_identity=CALLER, transfer_to=DESK)
    admin_only = AccessToken(KEY, SECRET).with_grants(VideoGrants(room_admin=True, room="call")).to_jwt()
    async with aiohttp.ClientSession() as session:
        client = TwirpClient(session, lk.url, "livekit")
        with pytest.raises(TwirpError) as refused:
            await client.request(
                "SIP",
                "TransferSIPParticipant",
                request,
                {"Authorization": f"Bearer {admin_only}"},
                TransferSIPParticipantResponse,
            )
    assert (refused.value.status, refused.value.message) == (401, "permissions denied")
    assert lk.fake.transfers == [] and CALLER in lk.fake.rooms["call"]


async def test_a_refused_transfer_keeps_the_caller_in_the_room_and_can_be_tried_again(lk: Standin) -> None:
    lk.fake.join("call", CALLER, caller=NUMBER)
    lk.fake.reject_transfer(486)
    with pytest.raises(SipCallError) as busy:
        await lk.transfer("call", CALLER)
    assert (busy.value.status, busy.value.sip_status_code) == (503, 486)
    lk.at(TRANSFER_HANGUP * 2)
    assert CALLER in lk.fake.rooms["call"] and lk.fake.transferred() == []
    await lk.transfer("call", CALLER)
    lk.at(TRANSFER_HANGUP * 3 + EPS)
    assert [t.ok for t in lk.fake.transfers] == [False, True]
    assert CALLER not in lk.fake.rooms["call"]


async def test_messages_reach_the_room_in_order_with_their_topic(lk: Standin) -> None:
    lk.fake.join("r", "alice")
    lk.fake.join("r", "bob")
    for state in ("waiting", "recovering", "fallback", "restored"):
        await lk.say("r", {"agent": "notetaker", "state": state, "since": "2026-01-01T00:00:00Z"})
    await lk.say("r", {"agent": "notetaker", "state": "restored", "since": "x"}, "alice", "ghost")
    states = [n["state"] for n in lk.fake.notices("r")]
    assert states == ["waiting", "recovering", "fallback", "restored", "restored"]
    first, last = lk.fake.messages["r"][0], lk.fake.messages["r"][-1]
    assert (first.kind, first.topic, first.to) == (
        DataPacket.Kind.RELIABLE,
        "warden.status",
        ("alice", "bob"),
    )
    assert last.to == ("alice",)  # a destination nobody has: answered all the same


async def test_a_message_to_a_room_the_server_does_not_have_fails_after_its_wait(lk: Standin) -> None:
    started = time.monotonic()
    with pytest.raises(TwirpError) as missing:
        await lk.say("gone", {"agent": "notetaker", "state": "waiting", "since": "x"})
    assert (missing.value.status, missing.value.message) == (503, "no response from servers")
    assert time.monotonic() - started >= 0.2  # the fixture's `missing_room_wait` (3 s on the server)
    assert lk.fake.messages == {}


async def test_a_fallback_agent_removed_leaves_with_participant_removed(lk: Standin) -> None:
    lk.fake.join("r", "alice")
    lk.fake.join("r", "agent-apology", agent_name="apology")
    lk.fake.publish("r", "agent-apology")
    await lk.api.room.remove_participant(RoomParticipantIdentity(room="r", identity="agent-apology"))
    assert lk.sent("r") == [
        ("track_unpublished", "agent-apology", ""),
        ("participant_left", "agent-apology", "PARTICIPANT_REMOVED"),
    ]
    with pytest.raises(TwirpError) as again:
        await lk.api.room.remove_participant(RoomParticipantIdentity(room="r", identity="agent-apology"))
    assert (again.value.status, again.value.message) == (404, "participant does not exist")


async def test_the_simulation_serves_the_fallback_agent_and_hangs_up_a_transferred_call(lk: Standin) -> None:
    """`never-comes` rooms get no expected agent however often dispatched; the fallback agent (on other
    workers) comes even in an outage and is counted when Warden removes it; a caller transferred leaves."""
    assert parse_failures("never-comes:0.1").never_comes == 0.1
    async with httpx.AsyncClient(transport=httpx.MockTransport(lambda _: httpx.Response(200))) as client:
        sim = Simulation(
            lk.fake,
            client,
            "http://warden/webhook",
            "demo-agent",
            parse_failures("never-comes:1,outage:0+3600"),
            agent_delay=(0, 0),
            fallback_agent="apology",
        )
        sim.fates.update({"web": "never_comes", "call": "never_comes"})
        lk.fake.join("web", "alice")
        for _ in range(3):
            lk.fake.create_dispatch("web", "demo-agent")  # the application's, then Warden's
        await lk.dispatch_fallback("web")
        await asyncio.gather(*sim._tasks)
        (fallback,) = lk.fake.agents_in("web")
        assert lk.fake.copies("web", "apology") == 1 and lk.fake.copies("web", "demo-agent") == 0
        await lk.api.room.remove_participant(RoomParticipantIdentity(room="web", identity=fallback))
        await asyncio.gather(*sim._tasks)
        await sim.tell("call", abandoned_call(lk.fake, "call", NUMBER, agent_name="demo-agent"))
        await lk.transfer("call", CALLER)
        lk.at(TRANSFER_HANGUP + EPS)
        report = sim.finish()
    assert (report.fallback_agents, report.fallback_removed, report.transfers) == (1, 1, 1)
    assert lk.fake.agents_in("call") == [] and CALLER not in lk.fake.rooms["call"]


async def test_with_no_sip_bridge_a_transfer_fails_as_unavailable(lk: Standin) -> None:
    lk.fake.sip_bridge = False  # a server without livekit/sip: nobody answers the transfer's RPC
    lk.fake.join("call", CALLER, caller=NUMBER)
    with pytest.raises(TwirpError) as nobody:
        await lk.transfer("call", CALLER)
    assert (nobody.value.status, nobody.value.message) == (503, "no response from servers")
    assert lk.fake.transfers == [] and CALLER in lk.fake.rooms["call"]

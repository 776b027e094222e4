"""Rooms in fallback over HTTP (issue 27): their own state in the API, OpenAPI and the dashboard, the
fallback in the room's timeline, and a transfer target in no answer."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from devtools.simulator.serving import serve
from service.app import create_app
from tests.support.events import parse
from tests.support.helpers import body, caller, person
from tests.support.settings import make_settings
from workers.core.events import EventKind, Fact, Participant, ParticipantKind, internal
from workers.core.room import Policy
from workers.store.writer import record_event

TARGET = "tel:+15550100"
POLICY = Policy("notetaker", max_redispatches=0, fallback_agent="apology", fallback_transfer_to=TARGET)


async def failed_room(engine: AsyncEngine, name: str, who: dict[str, object], kind: ParticipantKind) -> None:
    """People wait in `name` from 1000; the agent never comes and no re-dispatch is left: it fails."""
    sid = f"RM_{name}"
    joined = body("participant_joined", id=f"EV_{name}", created_at=1000, room=name, sid=sid, participant=who)
    await record_event(engine, parse(joined), received_at=1000.0, rules=POLICY)
    passed = internal(EventKind.DEADLINE_PASSED, f"d:{sid}", sid, name, Fact(1, 1015.0, agent="notetaker"))
    await record_event(engine, passed, received_at=1015.0, rules=POLICY)
    there = Participant(str(who["identity"]), str(who["sid"]), int(kind), "", 1000.0)
    answer = Fact(1, 1016.0, True, (there,), (), agent="notetaker")
    observed = internal(EventKind.PRESENCE_OBSERVED, f"p:{sid}", sid, name, answer)
    await record_event(engine, observed, received_at=1016.0, rules=POLICY)


@pytest.fixture
async def client(database_url: str, engine: AsyncEngine, redis_url: str) -> AsyncIterator[httpx.AsyncClient]:
    await failed_room(engine, "web-1", person("alice"), ParticipantKind.STANDARD)
    await failed_room(engine, "phone-1", caller("sip_caller", "+15559999"), ParticipantKind.SIP)
    settings = make_settings(
        database_url=database_url,
        redis_url=redis_url,
        warden_agent_name="notetaker",
        warden_fallback_transfer_to=TARGET,
    )
    async with serve(create_app(settings)) as url, httpx.AsyncClient(base_url=url) as http:
        yield http


async def test_rooms_in_fallback_are_their_own_state_in_the_api(client: httpx.AsyncClient) -> None:
    listed = (await client.get("/api/rooms", params={"state": "fallback"})).json()
    assert sorted(r["name"] for r in listed["rooms"]) == ["phone-1", "web-1"]
    assert {r["state"] for r in listed["rooms"]} == {"fallback"}
    web = (await client.get("/api/rooms/web-1")).json()
    assert web["state"] == "fallback" and web["recovery"]["state"] == "failed"
    assert "DispatchFallback" in [line["type"] for line in web["timeline"]]
    phone = await client.get("/api/rooms/phone-1")
    assert "TransferCaller" in [line["type"] for line in phone.json()["timeline"]]
    assert "15550100" not in phone.text
    enum = (await client.get("/api/openapi.json")).json()["components"]["schemas"]["Room"]["properties"]
    assert "fallback" in enum["state"]["enum"]


async def test_the_dashboard_filters_rooms_in_fallback(client: httpx.AsyncClient) -> None:
    html = (await client.get("/", params={"state": "fallback"})).text
    assert 'data-room="web-1"' in html and 'data-room="phone-1"' in html
    assert "phase-fallback" in html and "15550100" not in html
    page = (await client.get("/rooms/phone-1")).text
    assert "TransferCaller" in page and "15550100" not in page

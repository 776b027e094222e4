"""The agent's own state (`lk.agent.state`, issue 26) as an operator reads it: per expected agent in
`GET /api/rooms/{name}` (as its OpenAPI description says), on the room's page and from `warden room`,
with since when Warden has seen it in that state."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import httpx
import pytest
import schemathesis
from sqlalchemy.ext.asyncio import AsyncEngine

from devtools.simulator.serving import serve
from service.api.openapi import description
from service.app import create_app
from tests.support.cli import run_cli
from tests.support.events import parse
from tests.support.helpers import agent, body, person
from tests.support.settings import make_settings
from workers.core.events import EventKind, Fact, Participant, ParticipantKind, internal
from workers.core.room import Policy
from workers.store.writer import record_event

T0 = int(time.time()) - 120
RULES = Policy("notetaker")


@pytest.fixture
async def url(engine: AsyncEngine, database_url: str, redis_url: str) -> AsyncIterator[str]:
    """Alice and the notetaker in call-5; a look 20 s later lists the notetaker `thinking`."""
    for n, (event, extra) in enumerate(
        [
            ("participant_joined", {"participant": person("alice")}),
            ("participant_joined", {"participant": agent("bot")}),
        ]
    ):
        raw = body(event, id=f"EV_{n}", created_at=T0 + n, room="call-5", sid="RM_5", **extra)
        await record_event(engine, parse(raw), received_at=T0 + n, rules=RULES)
    listed = (
        Participant("alice", "PA_alice", int(ParticipantKind.STANDARD)),
        Participant("bot", "PA_bot", int(ParticipantKind.AGENT), "notetaker", state="thinking"),
    )
    look = internal(
        EventKind.RECONCILED, "reconciled:RM_5:1", "RM_5", "call-5", Fact(at=T0 + 20.0, participants=listed)
    )
    await record_event(engine, look, received_at=T0 + 20.0, rules=RULES)
    settings = make_settings(database_url=database_url, redis_url=redis_url, warden_agent_name="notetaker")
    async with serve(create_app(settings)) as served:
        yield served


async def test_the_api_shows_each_expected_agents_state_and_since_when(url: str) -> None:
    async with httpx.AsyncClient(base_url=url) as client:
        response = await client.get("/api/rooms/call-5")
    schemathesis.openapi.from_dict(description())["/api/rooms/{name}"]["GET"].validate_response(response)
    room = response.json()
    (expected,) = room["expected"]
    since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(T0 + 20))
    assert (expected["agent_name"], expected["agent_state"], expected["agent_state_since"]) == (
        "notetaker",
        "thinking",
        since,
    )
    assert [(a["identity"], a["agent_state"]) for a in room["agents"]] == [("bot", "thinking")]
    assert expected["recovery"]["deadline"]["reason"] == "stuck_thinking"  # 60 s after it was first seen


async def test_the_room_page_and_the_cli_show_it(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    async with httpx.AsyncClient(base_url=url) as client:
        html = (await client.get("/rooms/call-5")).text
    assert 'class="agent-state">thinking <span class="since"' in html
    code, out = await run_cli(capsys, "--url", url, "room", "call-5")
    clock = time.strftime("%H:%M:%S", time.gmtime(T0 + 20))
    assert code == 0 and f"notetaker (setting: agent_present, thinking since {clock} UTC)" in out

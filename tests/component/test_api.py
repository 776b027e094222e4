"""The operator API over HTTP: rooms newest first, one room with its timeline, and who may ask."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.requests import Request

from devtools.simulator.serving import serve
from service.api.auth import NO_TOKEN, authenticate
from service.app import create_app
from tests.support.events import parse
from tests.support.helpers import agent, body, person
from tests.support.settings import make_settings
from workers.core.room import Policy
from workers.store.writer import record_event


async def feed(engine: AsyncEngine, raw: bytes, received_at: float) -> None:
    await record_event(engine, parse(raw), received_at=received_at, rules=Policy("notetaker"))


@pytest.fixture
async def api(database_url: str, engine: AsyncEngine, redis_url: str) -> AsyncIterator[httpx.AsyncClient]:
    for i in range(3):
        sid = f"RM_{i}"
        await feed(
            engine,
            body("room_started", id=f"EV_s{i}", created_at=1000 + i, room=f"call-{i}", sid=sid),
            1000.0 + i,
        )
    await feed(
        engine,
        body(
            "participant_joined",
            id="EV_p",
            created_at=1003,
            room="call-1",
            sid="RM_1",
            participant=person("alice"),
        ),
        1003.5,
    )
    await feed(
        engine,
        body(
            "participant_joined",
            id="EV_a",
            created_at=1007,
            room="call-1",
            sid="RM_1",
            participant=agent("agent-AJ_1"),
        ),
        1007.25,
    )
    settings = make_settings(database_url=database_url, redis_url=redis_url, warden_agent_name="notetaker")
    async with serve(create_app(settings)) as url, httpx.AsyncClient(base_url=url) as client:
        yield client


async def test_rooms_are_listed_newest_first_and_paginated(api: httpx.AsyncClient) -> None:
    first = (await api.get("/api/rooms", params={"limit": 2})).json()
    assert [r["name"] for r in first["rooms"]] == ["call-2", "call-1"]
    assert (first["total"], first["next"]) == (3, "/api/rooms?limit=2&offset=2")
    second = (await api.get(first["next"])).json()
    assert ([r["name"] for r in second["rooms"]], second["next"]) == (["call-0"], None)
    assert (await api.get("/api/rooms", params={"limit": "0"})).status_code == 400


async def test_room_shows_people_agent_join_time_and_timeline(api: httpx.AsyncClient) -> None:
    room = (await api.get("/api/rooms/call-1")).json()
    assert (room["sid"], room["state"]) == ("RM_1", "agent_present")
    assert [p["identity"] for p in room["people"]] == ["alice"]
    assert [(a["identity"], a["agent_name"]) for a in room["agents"]] == [("agent-AJ_1", "notetaker")]
    assert room["agent_joined_at"] == "1970-01-01T00:16:47Z"
    assert [
        (e["source"], e["type"], e["participant"], e.get("participant_kind")) for e in room["timeline"]
    ] == [
        ("livekit", "room_started", None, None),
        ("livekit", "participant_joined", "alice", "STANDARD"),
        ("action", "ScheduleDeadline", None, None),  # the join SLA starts with alice
        ("livekit", "participant_joined", "agent-AJ_1", "AGENT"),
    ]
    assert room["timeline"][2]["detail"] == {
        "attempt": 1,
        "at": 1018.0,
        "reason": "join",
        "agent": "notetaker",
        "carried_out": True,  # act mode: every decision carried out (observe mode's say false)
    }
    assert room["timeline"][3]["received_at"] == "1970-01-01T00:16:47.250000Z"
    assert room["recovery"] == {
        "state": "none",
        "deadline": None,
        "redispatches": 0,
        "dispatch_id": None,
        "error": None,
    }
    assert "turnPassword" not in str(room) and "redacted" not in str(room)


async def test_unknown_room_is_404(api: httpx.AsyncClient) -> None:
    response = await api.get("/api/rooms/nope")
    assert (response.status_code, response.json()) == (404, {"error": "no such room"})


async def test_admin_token_is_required_when_set(database_url: str, redis_url: str) -> None:
    settings = make_settings(
        database_url=database_url, redis_url=redis_url, warden_admin_token="s3cret-admin"
    )
    async with serve(create_app(settings)) as url, httpx.AsyncClient(base_url=url) as client:
        assert (await client.get("/api/rooms")).status_code == 401
        assert (await client.get("/api/rooms", headers={"Authorization": "Bearer wrong"})).status_code == 401
        ok = await client.get("/api/rooms", headers={"Authorization": "Bearer s3cret-admin"})
        assert ok.status_code == 200


@pytest.mark.parametrize(
    ("host", "allowed"),
    [("127.0.0.1", True), ("::1", True), ("127.0.0.2", True), ("203.0.113.7", False), ("localhost", False)],
)
def test_without_admin_token_only_loopback_may_read(host: str, allowed: bool) -> None:
    scope = {"type": "http", "method": "GET", "path": "/api/rooms", "headers": [], "client": (host, 5)}
    refusal = authenticate(Request({**scope, "state": {"settings": make_settings()}}))
    assert (refusal is None) == allowed
    if refusal is not None:
        assert refusal.status_code == 403


@pytest.mark.parametrize(
    ("header", "value"),
    [
        ("X-Forwarded-For", "localhost"),  # uvicorn trusts it from loopback: it was served
        ("X-Forwarded-For", "127.0.0.1"),
        ("X-Real-IP", "127.0.0.1"),  # nginx's; never read, so every client behind it was loopback
        ("Forwarded", "for=127.0.0.1"),
        ("Forwarded", 'for="[::1]";proto=https'),
        ("X-Forwarded-Host", "warden.example.com"),
        ("X-Forwarded-Proto", "https"),
        ("Via", "1.1 proxy"),
        ("True-Client-IP", "127.0.0.1"),
    ],
)
async def test_without_admin_token_a_forwarded_request_is_refused_even_from_loopback(
    api: httpx.AsyncClient, header: str, value: str
) -> None:
    assert (await api.get("/api/rooms")).status_code == 200  # straight from loopback: served
    refused = await api.get("/api/rooms", headers={header: value})
    assert refused.status_code == 403
    error = refused.json()["error"]
    assert error.startswith(f"{NO_TOKEN}, so the API answers direct loopback clients only")
    assert f"came through a proxy ({header.lower()})" in error
    page = await api.get("/", headers={header: value})
    assert page.status_code == 403 and "came through a proxy" in page.text


@pytest.mark.parametrize("host", ["rebound.example:8000", "127.0.0.1.nip.io", "10.0.0.7:8000"])
async def test_without_a_token_a_request_to_a_name_other_than_loopback_is_refused(
    api: httpx.AsyncClient, host: str
) -> None:
    """DNS rebinding: another site's name made to point at 127.0.0.1 makes its page same-origin with a
    tokenless Warden; the browser's `Host` is that name, and Warden answers loopback names only."""
    for ours in ("127.0.0.1:8000", "localhost:8000", "[::1]:8000"):
        assert (await api.get("/api/rooms", headers={"Host": ours})).status_code == 200, ours
    origin = {"Host": host, "Origin": f"http://{host}", "Sec-Fetch-Site": "same-origin"}
    refused = await api.get("/api/rooms", headers=origin)
    assert refused.status_code == 403 and "DNS rebinding" in refused.json()["error"]
    started = await api.post("/api/maintenance", json={"agent": "*", "minutes": 30}, headers=origin)
    assert started.status_code == 403
    assert (await api.get("/api/maintenance")).json()["windows"] == [], "nothing started"
    assert (await api.get("/", headers=origin)).status_code == 403


async def test_with_an_admin_token_forwarded_requests_are_judged_by_the_token(
    database_url: str, redis_url: str
) -> None:
    settings = make_settings(database_url=database_url, redis_url=redis_url, warden_admin_token="s3cret")
    forwarded = {"X-Forwarded-For": "203.0.113.7", "X-Real-IP": "203.0.113.7"}
    async with serve(create_app(settings)) as url, httpx.AsyncClient(base_url=url) as client:
        assert (await client.get("/api/rooms", headers=forwarded)).status_code == 401
        good = {**forwarded, "Authorization": "Bearer s3cret"}
        assert (await client.get("/api/rooms", headers=good)).status_code == 200


async def test_incidents_are_listed_and_shown_with_rooms_and_actions(
    api: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    from workers.store import incidents

    incident_id, opened = await incidents.open_or_join(
        engine, "notetaker", "3 rooms missed their SLA", [("RM_1", "call-1")], 1000.0
    )
    assert opened
    await incidents.note(engine, incident_id, 1001.0, "LiveKit Cloud agent restart", "restarted CA_x")
    listed = (await api.get("/api/incidents")).json()
    assert [(i["id"], i["state"], i["rooms"]) for i in listed["incidents"]] == [(incident_id, "open", 1)]
    await incidents.room_recovered(engine, "notetaker", "RM_1", 1030.0)
    shown = (await api.get(f"/api/incidents/{incident_id}")).json()
    assert (shown["state"], shown["time_to_recovery_seconds"]) == ("resolved", 30.0)
    assert shown["rooms"] == [
        {
            "sid": "RM_1",
            "name": "call-1",
            "added_at": "1970-01-01T00:16:40Z",
            "recovered_at": "1970-01-01T00:17:10Z",
        }
    ]
    assert [a["action"] for a in shown["actions"]] == ["opened", "LiveKit Cloud agent restart", "resolved"]
    assert (await api.get("/api/incidents/IN_nope")).status_code == 404


async def test_database_failure_is_503_not_500(redis_url: str, tmp_path: Path) -> None:
    settings = make_settings(database_url=f"sqlite:///{tmp_path}/never-migrated.db", redis_url=redis_url)
    async with serve(create_app(settings)) as url, httpx.AsyncClient(base_url=url) as client:
        response = await client.get("/api/rooms")
        assert (response.status_code, response.json()) == (
            503,
            {"error": "database unavailable, retry later"},
        )


async def test_rooms_filtered_by_state(api: httpx.AsyncClient) -> None:
    present = (await api.get("/api/rooms", params={"state": "agent_present"})).json()
    assert ([r["name"] for r in present["rooms"]], present["total"]) == (["call-1"], 1)
    idle = (await api.get("/api/rooms", params={"state": "idle", "limit": 1})).json()
    assert idle["total"] == 2 and idle["next"] == "/api/rooms?limit=1&offset=1&state=idle"
    refused = await api.get("/api/rooms", params={"state": "sleepy"})
    assert refused.status_code == 400 and "'state' must be one of" in refused.json()["error"]


def rooms_gauge(text: str) -> dict[str, float]:
    from prometheus_client.parser import text_string_to_metric_families

    (family,) = [f for f in text_string_to_metric_families(text) if f.name == "warden_rooms"]
    return {s.labels["phase"]: s.value for s in family.samples}


async def test_the_rooms_gauge_reads_every_phase_and_drops_to_zero(
    api: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    """`warden_rooms{phase}` says how many rooms are in each phase now: every phase, no_agent_expected
    too, and a phase no room is in any more reads 0, not its last count."""
    gauge = rooms_gauge((await api.get("/metrics")).text)
    assert (gauge["agent_present"], gauge["idle"], gauge["no_agent_expected"], gauge["waiting"]) == (
        1,
        2,
        0,
        0,
    )
    for i, who in enumerate((agent("agent-AJ_1"), person("alice"))):
        left = body(
            "participant_left", id=f"EV_l{i}", created_at=1010, room="call-1", sid="RM_1", participant=who
        )
        await feed(engine, left, 1010.0 + i)
    gauge = rooms_gauge((await api.get("/metrics")).text)
    assert (gauge["agent_present"], gauge["agent_lost"], gauge["idle"]) == (0, 0, 3)

"""`GET /api/openapi.json` describes the API truly: schemathesis (its command line, as an API client's
author would run it) generates requests for every operation against a live Warden (uvicorn in-process)
holding rooms in several states, open and resolved incidents, a dead letter and canary runs: no 5xx, and every
response's status, content type, headers and body conform to the description."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from xml.etree import ElementTree

import httpx
import pytest
import schemathesis

from devtools.simulator.serving import serve
from service.api.openapi import description
from service.app import create_app
from tests.support.harness import AGENT, Harness, harness
from tests.support.helpers import agent, person
from tests.support.settings import make_settings
from workers.core.canary import Outcome
from workers.core.incident import CLOUD, Report, Signal
from workers.store import canary_runs
from workers.store.dead_letters import DeadLetter, keep
from workers.store.incident_steps import report
from workers.store.incidents import UNALERTED, note, open_or_join, room_recovered

TOKEN = "an-admin-token-for-the-openapi-test"
ST = Path(sys.executable).parent / "st"
CHECKS = (
    "not_a_server_error,status_code_conformance,content_type_conformance,"
    "response_headers_conformance,response_schema_conformance"
)


async def fill(h: Harness) -> None:
    """Rooms: one recovering (facts and actions in its timeline), one served, one closed; an incident
    resolved after a restart, one open; a dead letter; canary runs passed, failed and running."""
    h.fake.join("call-1", "alice")
    await h.send("room_started", room="call-1", sid="RM_1")
    await h.send("participant_joined", room="call-1", sid="RM_1", participant=person("alice"))
    await h.fire("RM_1")  # the join SLA passes: asked LiveKit, re-dispatched
    h.fake.join("call-2", "bob")
    h.fake.join("call-2", "agent-2", agent_name=AGENT)
    await h.send("participant_joined", room="call-2", sid="RM_2", participant=person("bob"))
    await h.send("participant_joined", room="call-2", sid="RM_2", participant=agent("agent-2", AGENT))
    await h.send("track_published", room="call-2", sid="RM_2", participant=agent("agent-2", AGENT))
    await h.send("room_started", room="call-3", sid="RM_3")
    await h.send("room_finished", room="call-3", sid="RM_3")
    now = h.clock.now
    old, _ = await open_or_join(h.engine, "translator", "3 rooms missed the SLA", [("RM_3", "call-3")], now)
    landed = Report(Signal.RESTART_LANDED, now + 1, leg=CLOUD)
    await report(h.engine, "translator", landed, UNALERTED, incident_id=old)
    await note(h.engine, old, now + 1, "restart", "restarted")
    await room_recovered(h.engine, "translator", "RM_3", now + 20)
    await open_or_join(h.engine, AGENT, "the agent did not come", [("RM_1", "call-1")], now + 30)
    error = "KeyError: 'room'"
    await keep(
        h.engine,
        DeadLetter("webhook:EV_x", "apply_webhook", [{"id": "EV_x"}], "RM_1", "call-1", error, 3, now),
    )
    passed = await canary_runs.start(h.engine, AGENT, now)
    await canary_runs.finish(h.engine, passed.n, Outcome.PASSED, now + 1, seconds=0.75)
    failed = await canary_runs.start(h.engine, AGENT, now + 300)
    await canary_runs.finish(h.engine, failed.n, Outcome.FAILED, now + 315, detail="no agent within 15 s")
    await canary_runs.start(h.engine, AGENT, now + 600)


@pytest.fixture
async def live(redis_url: str, database_url: str) -> AsyncIterator[str]:
    async with harness(redis_url, database_url) as h:
        await fill(h)
    settings = make_settings(
        database_url=database_url,
        redis_url=redis_url,
        warden_admin_token=TOKEN,
        warden_canary_agents=f"{AGENT},translator",
    )
    async with serve(create_app(settings)) as url:
        yield url


async def test_the_description_is_valid_openapi_3_1_served_under_the_apis_access_rules(live: str) -> None:
    async with httpx.AsyncClient(base_url=live) as client:
        refused = await client.get("/api/openapi.json")
        served = await client.get("/api/openapi.json", headers={"Authorization": f"Bearer {TOKEN}"})
    assert refused.status_code == 401 and "error" in refused.json()
    assert served.status_code == 200 and served.headers["content-type"] == "application/json"
    schemathesis.openapi.from_dict(served.json()).validate()  # against the OpenAPI 3.1 meta-schema
    assert served.json() == description()
    assert served.json()["openapi"] == "3.1.0"


async def test_every_route_of_the_api_is_described() -> None:
    app = create_app(make_settings())
    routes = {
        route.path.replace("{id:path}", "{id}") for route in app.routes if route.path.startswith("/api/")
    }
    assert routes == set(description()["paths"])


async def test_every_real_answer_conforms(live: str) -> None:
    """Each room, incident and dead letter the instance holds, a retry and a heartbeat, checked against
    the description by schemathesis' validator (the generated requests below rarely name real ones)."""
    schema = schemathesis.openapi.from_dict(description())
    async with httpx.AsyncClient(base_url=live, headers={"Authorization": f"Bearer {TOKEN}"}) as client:

        async def conforms(method: str, template: str, path: str, **kwargs: object) -> httpx.Response:
            response = await client.request(method, path, **kwargs)  # type: ignore[arg-type]
            schema[template][method].validate_response(response)
            return response

        rooms = (await conforms("GET", "/api/rooms", "/api/rooms")).json()["rooms"]
        for room in rooms:
            await conforms("GET", "/api/rooms/{name}", f"/api/rooms/{room['name']}")
        incidents = (await conforms("GET", "/api/incidents", "/api/incidents")).json()["incidents"]
        for incident in incidents:
            await conforms("GET", "/api/incidents/{id}", f"/api/incidents/{incident['id']}")
        letters = (await conforms("GET", "/api/dead-letters", "/api/dead-letters")).json()["dead_letters"]
        canaries = (await conforms("GET", "/api/canaries", "/api/canaries")).json()["agents"]
        retry = "/api/dead-letters/{id}/retry"
        assert (await conforms("POST", retry, "/api/dead-letters/webhook:EV_x/retry")).status_code == 200
        assert (await conforms("POST", retry, "/api/dead-letters/webhook:EV_x/retry")).status_code == 409
        started = await conforms(
            "POST", "/api/maintenance", "/api/maintenance", json={"agent": "*", "minutes": 5}
        )
        refused = await conforms("POST", "/api/maintenance", "/api/maintenance", json={"agent": "*"})
        windows = (await conforms("GET", "/api/maintenance", "/api/maintenance")).json()["windows"]
        one = "/api/maintenance/{id}"
        ended = await conforms("DELETE", one, f"/api/maintenance/{started.json()['id']}")
        assert (await conforms("DELETE", one, f"/api/maintenance/{started.json()['id']}")).status_code == 409
        assert (await conforms("DELETE", one, "/api/maintenance/0")).status_code == 404
        beat = await conforms(
            "POST", "/api/rooms/{name}/heartbeat", "/api/rooms/call-2/heartbeat", json={"identity": "agent-2"}
        )
    assert beat.status_code == 202
    assert (started.status_code, refused.status_code, ended.status_code) == (201, 400, 200)
    assert [w["active"] for w in windows] == [True]
    assert sorted(i["state"] for i in incidents) == ["open", "resolved"]
    states = {r["name"]: (r["state"], (r["recovery"]["deadline"] or {}).get("reason")) for r in rooms}
    assert states == {
        "call-1": ("waiting", "confirm"),
        "call-2": ("agent_active", None),
        "call-3": ("closed", None),
    }
    assert [letter["id"] for letter in letters] == ["webhook:EV_x"]
    assert [(c["agent"], [r["outcome"] for r in c["runs"]]) for c in canaries] == [
        (AGENT, ["running", "fail", "pass"]),
        ("translator", []),
    ]


async def test_schemathesis_finds_no_server_error_and_no_nonconforming_response(
    live: str, tmp_path: Path
) -> None:
    run = await asyncio.create_subprocess_exec(
        str(ST),
        "run",
        f"{live}/api/openapi.json",
        "--header",
        f"Authorization: Bearer {TOKEN}",
        "--checks",
        CHECKS,
        "--max-examples",
        "25",
        "--seed",
        "18",
        "--workers",
        "1",
        "--report",
        "junit",
        "--report-junit-path",
        str(tmp_path / "junit.xml"),
        "--no-color",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        cwd=tmp_path,
    )
    output, _ = await asyncio.wait_for(run.communicate(), timeout=300)
    text = output.decode(errors="replace")
    assert run.returncode == 0, text
    suite = ElementTree.parse(tmp_path / "junit.xml").getroot()
    assert (suite.get("failures"), suite.get("errors"), suite.get("skipped")) == ("0", "0", "0"), text
    tested = {case.get("name") for case in suite.iter("testcase")}
    # Every operation but the description's own URL, which schemathesis leaves out; and the stateful
    # phase (following the links it infers, e.g. a listed room's name into GET /api/rooms/{name}).
    described = {
        f"{method.upper()} {path}" for path, item in description()["paths"].items() for method in item
    }
    assert tested == described - {"GET /api/openapi.json"} | {"Stateful tests"}, text

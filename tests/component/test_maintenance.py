"""Maintenance windows over HTTP, on SQLite and PostgreSQL: `POST /api/maintenance` checks what it is
asked whole (a bad value is a 400 naming it, nothing stored), `GET` lists the active and recent windows
newest first, `DELETE` ends one early (404 unknown, 409 over); and a window started through the API
counts from the incident machine's next decision, ending it from the next sweep's."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from devtools.simulator.serving import serve
from service.app import create_app
from tests.support.cli import run_cli
from tests.support.settings import make_settings
from workers.core.alerts import SLACK, SLACK_STEPS, AlertRoute, Notify
from workers.core.incident import IncidentPolicy, Report, Restart, Signal
from workers.store.incident_steps import report

TOKEN = "an-admin-token-for-the-maintenance-test"
VIEWER, OPERATOR = "a-viewers-token-for-the-maintenance-test", "an-operators-token-for-the-maintenance-test"
POLICY = IncidentPolicy(
    cloud=True, doing="LiveKit Cloud agent restart", routes=(AlertRoute(SLACK, SLACK_STEPS),)
)


@pytest.fixture
async def api(database_url: str, redis_url: str) -> AsyncIterator[httpx.AsyncClient]:
    settings = make_settings(
        database_url=database_url,
        redis_url=redis_url,
        warden_admin_token=TOKEN,
        warden_tokens=f"vera:viewer:{VIEWER},otto:operator:{OPERATOR}",
    )
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with serve(create_app(settings)) as url, httpx.AsyncClient(base_url=url, headers=headers) as client:
        yield client


async def windows(api: httpx.AsyncClient) -> list[dict[str, Any]]:
    answer = await api.get("/api/maintenance")
    assert answer.status_code == 200
    return list(answer.json()["windows"])


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ({"agent": "", "minutes": 30}, "agent"),
        ({"agent": "x" * 129, "minutes": 30}, "agent: 129 characters, over 128"),
        ({"agent": "notetaker\n", "minutes": 30}, "agent"),
        ({"agent": "a\x00b", "minutes": 30}, "agent"),
        ({"minutes": 30}, "agent"),
        ({"agent": "notetaker"}, "minutes"),
        ({"agent": "notetaker", "minutes": 0}, "minutes"),
        ({"agent": "notetaker", "minutes": 10081}, "minutes"),
        ({"agent": "notetaker", "minutes": 2.5}, "minutes"),
        ({"agent": "notetaker", "minutes": "30"}, "minutes"),
        ({"agent": "notetaker", "minutes": True}, "minutes"),
        ({"agent": "notetaker", "minutes": 30, "reason": "r" * 501}, "reason: 501 characters, over 500"),
        ({"agent": "notetaker", "minutes": 30, "reason": "nul\x00"}, "reason"),
        ({"agent": "notetaker", "minutes": 30, "reason": 7}, "reason"),
        ({"agent": "notetaker", "minutes": 30, "until": "never"}, "unknown field(s): until"),
        (["notetaker", 30], "JSON object"),
    ],
)
async def test_a_bad_window_is_a_400_naming_what_is_wrong_and_nothing_is_stored(
    api: httpx.AsyncClient, body: Any, says: str
) -> None:
    answer = await api.post("/api/maintenance", json=body)
    assert answer.status_code == 400 and says in answer.json()["error"]
    assert await windows(api) == []


async def test_a_body_that_is_not_json_or_too_big_is_refused(api: httpx.AsyncClient) -> None:
    assert (await api.post("/api/maintenance", content=b"{not json")).status_code == 400
    assert (await api.post("/api/maintenance", content=b" " * 9000)).status_code == 413
    assert await windows(api) == []


async def test_windows_are_started_listed_newest_first_and_ended_early_once(api: httpx.AsyncClient) -> None:
    first = await api.post("/api/maintenance", json={"agent": "notetaker", "minutes": 30, "reason": "v2"})
    assert first.status_code == 201
    started = first.json()
    assert set(started) == {"id", "agent", "until", "reason", "by"}
    assert (started["agent"], started["reason"], started["by"]) == ("notetaker", "v2", "admin")
    every = (await api.post("/api/maintenance", json={"agent": "*", "minutes": 5})).json()
    listed = await windows(api)
    assert [(w["id"], w["agent"], w["active"], w["reason"]) for w in listed] == [
        (every["id"], "*", True, ""),
        (started["id"], "notetaker", True, "v2"),
    ]
    ended = await api.delete(f"/api/maintenance/{started['id']}")
    assert ended.status_code == 200 and ended.json()["ended_at"] and not ended.json()["active"]
    again = await api.delete(f"/api/maintenance/{started['id']}")
    assert again.status_code == 409 and "over already" in again.json()["error"]
    for unknown in ("999999", "99999999999999999999", "abc", "-1"):
        assert (await api.delete(f"/api/maintenance/{unknown}")).status_code == 404, unknown
    assert [w["active"] for w in await windows(api)] == [True, False]  # kept as history


async def test_only_an_authorised_caller_may_start_or_end_a_window(api: httpx.AsyncClient) -> None:
    async with httpx.AsyncClient(base_url=str(api.base_url)) as stranger:
        assert (await stranger.post("/api/maintenance", json={"agent": "*", "minutes": 5})).status_code == 401
        assert (await stranger.get("/api/maintenance")).status_code == 401
        assert (await stranger.delete("/api/maintenance/1")).status_code == 401
    assert await windows(api) == []


async def test_a_window_started_through_the_api_counts_from_the_next_decision(
    api: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    window = (await api.post("/api/maintenance", json={"agent": "notetaker", "minutes": 30})).json()
    now = time.time()
    outage = Report(Signal.OUTAGE, now, reason="3 rooms missed their SLA within 60 s", rooms=3)
    opened = await report(engine, "notetaker", outage, POLICY, deployment="CA_1", rooms=[("RM_1", "call-1")])
    assert opened is not None
    assert not any(isinstance(d, Restart | Notify) for d in opened.decisions)
    incident = (await api.get(f"/api/incidents/{opened.incident.id}")).json()
    assert incident["in_maintenance"] is True
    assert any(a["action"] == "maintenance" for a in incident["actions"])

    assert (await api.delete(f"/api/maintenance/{window['id']}")).status_code == 200
    swept = await report(engine, "notetaker", Report(Signal.SWEPT, time.time()), POLICY, deployment="CA_1")
    assert swept is not None and Restart(("cloud",)) in swept.decisions
    assert [d.step for d in swept.decisions if isinstance(d, Notify)] == ["opened"]
    assert (await api.get(f"/api/incidents/{opened.incident.id}")).json()["in_maintenance"] is False


async def test_the_cli_starts_lists_and_ends_windows(
    api: httpx.AsyncClient, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WARDEN_ADMIN_TOKEN", TOKEN)
    url = str(api.base_url)
    code, out = await run_cli(
        capsys, "--url", url, "maintenance", "start", "--agent", "*", "--minutes", "30", "--reason", "[b]v2"
    )
    assert code == 0 and "started: every agent until" in out and "by admin" in out
    (window,) = await windows(api)
    code, out = await run_cli(capsys, "--url", url, "maintenance", "list")
    assert code == 0 and "every agent" in out and "active" in out and "[b]v2" in out  # markup inert
    code, out = await run_cli(capsys, "--url", url, "maintenance", "end", str(window["id"]))
    assert code == 0 and f"maintenance window {window['id']} ended" in out
    code, out = await run_cli(capsys, "--url", url, "maintenance", "end", str(window["id"]))
    assert code == 1 and "over already" in out
    code, out = await run_cli(capsys, "--url", url, "maintenance", "start", "--agent", "x", "--minutes", "0")
    assert code == 1 and "minutes" in out and len(await windows(api)) == 1


async def test_the_dashboard_shows_a_banner_on_every_page_while_a_window_is_active(
    api: httpx.AsyncClient,
) -> None:
    reason = "<script>alert(1)</script>\u202eevil, as caller +1 415 555 0123 said"
    await api.post("/api/maintenance", json={"agent": "notetaker", "minutes": 30, "reason": reason})
    for path in ("/", "/incidents", "/dead-letters", "/canaries", "/maintenance", "/rooms/nowhere"):
        page = (await api.get(path)).text
        assert 'class="banner maintenance"' in page, path
        assert "maintenance</a>: agent notetaker until " in page and " UTC, by admin: " in page, path
        assert "<script>alert" not in page and "&lt;script&gt;" in page and "\u202e" not in page, path
        assert "555 0123" not in page and "as caller " in page, f"{path}: a phone number in the page"
    assert 'class="banner maintenance"' not in (await api.get("/?fragment=1")).text  # a live part has none
    (window,) = await windows(api)
    assert "555 0123" not in str(window) and "as caller " in window["reason"], "masked in the API too"
    await api.delete(f"/api/maintenance/{window['id']}")
    assert 'class="banner maintenance"' not in (await api.get("/incidents")).text


async def test_the_dashboards_forms_start_and_end_a_window(api: httpx.AsyncClient) -> None:
    form = {"agent": "*", "minutes": "15", "reason": "moving regions"}
    started = await api.post("/maintenance", data=form)
    assert started.status_code == 303 and started.headers["location"] == "/maintenance"
    (window,) = await windows(api)
    assert (window["agent"], window["reason"], window["by"], window["active"]) == (
        "*",
        "moving regions",
        "admin",
        True,
    )
    page = (await api.get("/maintenance")).text
    assert f'action="/maintenance/{window["id"]}/end"' in page and "every agent" in page
    bad = await api.post("/maintenance", data={"agent": "*", "minutes": "a week"})
    assert bad.status_code == 400 and "minutes: a whole number from 1 to 10080" in bad.text
    assert len(await windows(api)) == 1
    ended = await api.post(f"/maintenance/{window['id']}/end")
    assert ended.status_code == 303 and not (await windows(api))[0]["active"]
    again = await api.post(f"/maintenance/{window['id']}/end")
    assert again.status_code == 409 and "over already" in again.text
    assert (await api.post("/maintenance/12345/end")).status_code == 404
    async with httpx.AsyncClient(base_url=str(api.base_url)) as stranger:
        assert (await stranger.post("/maintenance", data=form)).status_code == 401
    assert len(await windows(api)) == 1


async def test_a_viewer_reads_windows_but_may_not_start_or_end_one_an_operator_is_named(
    api: httpx.AsyncClient,
) -> None:
    viewer = {"Authorization": f"Bearer {VIEWER}"}
    operator = {"Authorization": f"Bearer {OPERATOR}"}
    body = {"agent": "notetaker", "minutes": 30}
    refused = await api.post("/api/maintenance", json=body, headers=viewer)
    assert refused.status_code == 403 and "viewer" in refused.json()["error"]
    assert (
        await api.post("/maintenance", data={"agent": "x", "minutes": "5"}, headers=viewer)
    ).status_code == 403
    assert await windows(api) == []
    started = await api.post("/api/maintenance", json=body, headers=operator)
    assert started.status_code == 201 and started.json()["by"] == "otto"
    window = started.json()["id"]
    assert (await api.get("/api/maintenance", headers=viewer)).json()["windows"][0]["by"] == "otto"
    page = (await api.get("/maintenance", headers=viewer)).text
    assert "by otto" in page and 'id="start-maintenance"' not in page and "end-maintenance" not in page
    assert (await api.delete(f"/api/maintenance/{window}", headers=viewer)).status_code == 403
    assert (await api.post(f"/maintenance/{window}/end", headers=viewer)).status_code == 403
    cross = {**operator, "Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"}
    assert (await api.delete(f"/api/maintenance/{window}", headers=cross)).status_code == 403
    assert (await api.post(f"/maintenance/{window}/end", headers=cross)).status_code == 403
    assert (await windows(api))[0]["active"]
    page = (await api.get("/maintenance", headers=operator)).text
    assert 'id="start-maintenance"' in page and "end-maintenance" in page

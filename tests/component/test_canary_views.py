"""What an operator reads of canaries: `GET /api/canaries`, the dashboard's `/canaries` and `warden
canaries`, over runs recorded in the store as the canary job records them (`canary_runs.start`/`finish`):
configured agents with and without runs, an agent dropped from the configuration with runs on record,
failures in a row and the last success read beyond the runs listed; the API's limits and access rules;
the empty state that says how to configure canaries."""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from devtools.simulator.serving import serve
from service.api.rooms import iso
from service.app import create_app
from tests.support.cli import run_cli
from tests.support.settings import make_settings
from workers.core.canary import Outcome
from workers.store.canary_runs import finish, start

T0 = float(int(time.time()) - 3600)
TOKEN = "a-canary-admin-token"


async def record(engine: AsyncEngine) -> dict[str, int]:
    """notetaker: passed in 1.25 s, then failed twice (never came) with a run refused for want of
    capacity between (workers full: no failure), then one running; oldbot (no longer configured): one
    pass; translator: configured, no run yet. The runs' numbers by name."""
    runs: dict[str, int] = {}
    passed = await start(engine, "notetaker", T0)
    await finish(engine, passed.n, Outcome.PASSED, T0 + 1.25, seconds=1.25)
    runs["passed"] = passed.n
    for k in (1, 2):
        failed = await start(engine, "notetaker", T0 + 300 * k)
        await finish(engine, failed.n, Outcome.FAILED, T0 + 300 * k + 15, detail="no agent within 15 s")
        runs[f"failed{k}"] = failed.n
        if k == 1:
            full = await start(engine, "notetaker", T0 + 450)
            await finish(engine, full.n, Outcome.CAPACITY, T0 + 452, detail="workers full")
            runs["capacity"] = full.n
    runs["running"] = (await start(engine, "notetaker", T0 + 900)).n
    old = await start(engine, "oldbot", T0 - 86400)
    await finish(engine, old.n, Outcome.PASSED, T0 - 86400 + 2, seconds=2.0)
    return runs


@pytest.fixture
async def runs(engine: AsyncEngine) -> dict[str, int]:
    return await record(engine)


@pytest.fixture
async def warden(runs: dict[str, int], database_url: str, redis_url: str) -> AsyncIterator[str]:
    """Warden's web with canaries for notetaker and translator (every 5m, the 15 s join SLA)."""
    settings = make_settings(
        database_url=database_url, redis_url=redis_url, warden_canary_agents="notetaker,translator"
    )
    async with serve(create_app(settings)) as url:
        yield url


@pytest.fixture
async def api(warden: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=warden) as client:
        yield client


async def test_the_api_lists_configured_agents_then_those_with_runs_on_record(
    api: httpx.AsyncClient, runs: dict[str, int]
) -> None:
    answer = await api.get("/api/canaries")
    assert answer.status_code == 200
    agents = answer.json()["agents"]
    assert [(a["agent"], a["configured"]) for a in agents] == [
        ("notetaker", True),
        ("translator", True),
        ("oldbot", False),
    ]
    notetaker, translator, oldbot = agents
    assert {k: v for k, v in notetaker.items() if k != "runs"} == {
        "agent": "notetaker",
        "configured": True,
        "every_seconds": 300.0,
        "sla_seconds": 15.0,
        "failures_to_open": 2,
        "failing_in_a_row": 2,
        "last_success_at": iso(T0 + 1.25),
    }
    assert [(r["outcome"], r["seconds"]) for r in notetaker["runs"]] == [
        ("running", None),
        ("fail", None),
        ("capacity", None),  # neither counts nor breaks the two failures in a row
        ("fail", None),
        ("pass", 1.25),
    ]
    assert notetaker["runs"][1] == {
        "n": runs["failed2"],
        "room": f"warden-canary-notetaker-{runs['failed2']}",
        "started_at": iso(T0 + 600),
        "finished_at": iso(T0 + 615),
        "outcome": "fail",
        "seconds": None,
        "detail": "no agent within 15 s",
    }
    assert notetaker["runs"][0]["finished_at"] is None
    assert [translator[k] for k in ("runs", "failing_in_a_row", "last_success_at")] == [[], 0, None]
    assert (oldbot["every_seconds"], oldbot["sla_seconds"], oldbot["failures_to_open"]) == (None, None, 2)
    assert oldbot["last_success_at"] == iso(T0 - 86400 + 2)


async def test_limit_pages_the_runs_but_not_the_streak_or_the_last_success(api: httpx.AsyncClient) -> None:
    notetaker = (await api.get("/api/canaries", params={"limit": 1})).json()["agents"][0]
    assert [r["outcome"] for r in notetaker["runs"]] == ["running"]
    assert (notetaker["failing_in_a_row"], notetaker["last_success_at"]) == (2, iso(T0 + 1.25))
    for bad in ("0", "201", "ten", "-1"):
        refused = await api.get("/api/canaries", params={"limit": bad})
        assert refused.status_code == 400
        assert refused.json() == {"error": "'limit' must be a whole number from 1 to 200"}


async def test_the_api_keeps_the_apis_access_rules(
    runs: dict[str, int], api: httpx.AsyncClient, database_url: str, redis_url: str
) -> None:
    forwarded = await api.get("/api/canaries", headers={"X-Forwarded-For": "127.0.0.1"})
    assert forwarded.status_code == 403 and "came through a proxy" in forwarded.json()["error"]
    settings = make_settings(database_url=database_url, redis_url=redis_url, warden_admin_token=TOKEN)
    async with serve(create_app(settings)) as url, httpx.AsyncClient(base_url=url) as client:
        assert (await client.get("/api/canaries")).status_code == 401
        assert (await client.get("/canaries")).status_code == 401
        good = {"Authorization": f"Bearer {TOKEN}"}
        agents = (await client.get("/api/canaries", headers=good)).json()["agents"]
    assert [(a["agent"], a["configured"]) for a in agents] == [("notetaker", False), ("oldbot", False)]


def text(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html)).strip()


def article(html: str, agent: str) -> str:
    found = re.search(rf'<article class="canary \w+" data-agent="{agent}">.*?</article>', html, re.S)
    assert found, f"no canaries of {agent}"
    return text(found.group(0))


async def test_the_page_shows_each_agents_terms_last_success_streak_and_runs(
    api: httpx.AsyncClient, runs: dict[str, int]
) -> None:
    answer = await api.get("/canaries")
    assert answer.status_code == 200 and answer.headers["x-frame-options"] == "DENY"
    html = answer.text
    assert '<a href="/canaries" aria-current="page">Canaries</a>' in html
    when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(T0 + 1.25))
    notetaker = article(html, "notetaker")
    assert notetaker.startswith(
        f"notetaker Every 5 min 0 s SLA 15.0 s Last success {when} Failures in a row 2 (an incident at 2)"
    )
    assert f"fail - warden-canary-notetaker-{runs['failed1']} no agent within 15 s" in notetaker
    assert f"pass 1.2 s warden-canary-notetaker-{runs['passed']}" in notetaker
    assert f"capacity - warden-canary-notetaker-{runs['capacity']} workers full" in notetaker
    assert '<span class="badge canary-capacity">capacity</span>' in html
    assert f"running - warden-canary-notetaker-{runs['running']}" in notetaker
    assert "Last success never Failures in a row 0" in article(html, "translator")
    assert "No run yet" in article(html, "translator")
    assert "(not configured any more: runs on record)" in article(html, "oldbot")
    fragment = (await api.get("/canaries", params={"fragment": "1"})).text
    assert "<html" not in fragment and article(fragment, "notetaker") == notetaker


async def test_the_command_prints_each_agents_canaries(
    warden: str, runs: dict[str, int], capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = await run_cli(capsys, "--url", warden, "canaries", "--limit", "4")
    assert code == 0, out
    lines = out.splitlines()
    assert lines[0].startswith("notetaker  every 5 min, SLA 15.0 s   last success: ")
    assert lines[0].endswith("failures in a row: 2 (an incident at 2)")
    assert iso(T0 + 1.25)[:19] in lines[0]
    assert f"warden-canary-notetaker-{runs['running']}" in out and "no agent within 15 s" in out
    assert f"warden-canary-notetaker-{runs['passed']}" not in out  # --limit 4: the four newest runs
    assert f"warden-canary-notetaker-{runs['capacity']}" in out and "capacity" in out
    assert "translator  every 5 min, SLA 15.0 s   last success: never   failures in a row: 0" in out
    assert "oldbot  not configured any more (runs on record)" in out


async def test_without_canaries_each_view_says_how_to_configure_them(
    engine: AsyncEngine, database_url: str, redis_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = make_settings(database_url=database_url, redis_url=redis_url)
    async with serve(create_app(settings)) as url, httpx.AsyncClient(base_url=url) as client:
        assert (await client.get("/api/canaries")).json() == {"agents": []}
        page = text((await client.get("/canaries")).text)
        code, out = await run_cli(capsys, "--url", url, "canaries")
    assert "Canaries (0 agents) No canaries configured." in page
    assert "Name the agents in WARDEN_CANARY_AGENTS (comma-separated), or set canary = true" in page
    assert code == 0 and "No canaries configured: name the agents in WARDEN_CANARY_AGENTS" in out
    assert "`canary = true`" in out

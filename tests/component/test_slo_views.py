"""The figures agree (issue 29): a known mix of rooms through the worker's jobs (in-memory LiveKit, on
the test's clock), then `GET /api/slo`, the worker's `warden_sli_events_total`, the dashboard's `/slo`
and `/slo/{agent}` and `warden slo` all give the same counts; the rooms that spent the budget link to
their timelines."""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from prometheus_client import REGISTRY

from devtools.simulator.serving import serve
from service.app import create_app
from tests.support.cli import run_cli
from tests.support.jobs_world import AGENT, World, jobs_world
from tests.support.settings import make_settings

NEVER = "call-+14155550123"  # a SIP room's name: a caller's phone number
LEVELS = [(sli, outcome) for sli in ("on_time", "served") for outcome in ("good", "bad")]


def counted() -> dict[tuple[str, str], float]:
    return {
        key: REGISTRY.get_sample_value(
            "warden_sli_events_total", {"agent": AGENT, "sli": key[0], "outcome": key[1]}
        )
        or 0.0
        for key in LEVELS
    }


async def live_mix(world: World) -> None:
    """Five rooms whose agent came in time, two it came to late (Warden re-dispatched), one it never came
    to (ended), one left before its SLA ran out (not counted), one still waiting (not counted yet)."""
    for n in range(5):
        await world.person_joins(f"ok-{n}")
        await world.wait(2)
        await world.agent_joins(f"ok-{n}", f"agent-ok-{n}")
    for n in range(2):
        await world.person_joins(f"late-{n}")
    await world.wait(15 + 5)  # their SLA ran out: Warden re-dispatched, the agent came
    await world.person_joins("gone")
    await world.wait(3)
    await world.person_leaves("gone")
    await world.room_ends("gone")
    world.agent_down()
    await world.person_joins(NEVER)
    await world.wait(45)
    await world.person_leaves(NEVER)
    await world.room_ends(NEVER)
    await world.person_joins("waiting")
    await world.wait(5)


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    async with jobs_world(tmp_path, cloud=False) as ready:  # nothing to restart: `never` stays so
        ready.clock.now = time.time() - 1800  # within the last hour: the window and the burn rate's
        yield ready


async def test_the_api_the_metrics_the_dashboard_and_the_cli_give_the_same_counts(
    world: World, tmp_path: Path, redis_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    before = counted()
    await live_mix(world)
    grown = {key: value - before[key] for key, value in counted().items()}
    assert grown == {
        ("on_time", "good"): 5,
        ("on_time", "bad"): 3,
        ("served", "good"): 7,
        ("served", "bad"): 1,
    }

    settings = make_settings(
        database_url=f"sqlite:///{tmp_path / 'warden.db'}", redis_url=redis_url, warden_agent_name=AGENT
    )
    async with serve(create_app(settings)) as url, httpx.AsyncClient(base_url=url) as client:
        (api,) = (await client.get("/api/slo")).json()["agents"]
        listing = (await client.get("/slo")).text
        page = (await client.get(f"/slo/{AGENT}")).text
        missing = await client.get("/slo/nobody")
        code, cli = await run_cli(capsys, "--url", url, "slo")

    assert api == {
        "agent": AGENT,
        "objective": 0.99,
        "window": "30d",
        "on_time": {"good": 5, "total": 8, "ratio": 0.625},
        "served": {"good": 7, "total": 8, "ratio": 0.875},
        "budget_remaining": -11.5,  # 1 - (1/8) / (1 - 0.99)
        "burn_rate_1h": 12.5,  # (1/8) / (1 - 0.99)
    }
    for html in (listing, page):
        assert 'class="on-time" data-good="5" data-total="8"' in html
        assert 'class="served" data-good="7" data-total="8"' in html
        assert "-1150.0 %" in html and "12.50\u00d7" in html
    spent = re.findall(r'<tr data-room="([^"]+)"><td>[^<]*</td><td><a href="/rooms/([^"]+)">', page)
    assert sorted(name for name, _ in spent) == ["call-\u2022\u2022\u20220123", "late-0", "late-1"]
    # linked by the room's sid (the fake LiveKit's are "RM_" and the name; LiveKit's, random letters)
    assert all(link.startswith("RM_") for _, link in spent), "linked by its name: the number in the page"
    assert "5550123" not in re.sub(r'href="/rooms/RM_[^"]*"', "", page), "a phone number reached the page"
    assert '<svg class="slo-chart"' in page and 'data-sli="on_time"' in page and 'data-sli="served"' in page
    assert missing.status_code == 404
    assert code == 0 and "62.50 % (5/8)" in cli and "87.50 % (7/8)" in cli and "-1150.0 %" in cli

"""The dashboard over HTTP: what an operator reads on `/`, `/rooms/{name}` and `/incidents`, who may
read it, and that room names cannot inject markup, nor control characters, phone numbers or a page's
worth of name (`tests.support.hostile`). (The browser tests load the same pages in Chromium.)"""

from __future__ import annotations

import base64
import re
import time
from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from devtools.simulator.serving import serve
from service.app import create_app
from service.dashboard.charts import histogram_bars, percentile
from tests.support.events import parse
from tests.support.helpers import agent, body, person
from tests.support.hostile import DIGITS, LONG, LONG_IDENTITY, RAW, ROOMS, record_rooms
from tests.support.settings import make_settings
from workers.core.events import EventKind, Fact, Participant, internal
from workers.core.room import Policy
from workers.store.incidents import note, open_or_join, room_recovered
from workers.store.writer import record_event

T0 = int(time.time()) - 600
POLICY = Policy("notetaker", join_sla=15.0)


async def feed(engine: AsyncEngine, event: str, n: int, room: str, at: float, **extra: object) -> None:
    raw = body(event, id=f"EV_{room}_{n}", created_at=int(at), room=room, sid=f"RM_{room}", **extra)
    await record_event(engine, parse(raw), received_at=at, rules=POLICY)


@pytest.fixture
async def rooms(engine: AsyncEngine) -> AsyncEngine:
    """quick: agent after 4 s; slow: agent after 40 s; lonely: still waiting; <b>x</b>: a hostile name."""
    for room, wait in (("quick", 4.0), ("slow", 40.0), ("lonely", None), ("<b>x</b>", None)):
        await feed(engine, "room_started", 0, room, T0)
        await feed(engine, "participant_joined", 1, room, T0 + 1, participant=person("alice"))
        if wait is not None:
            await feed(engine, "participant_joined", 2, room, T0 + 1 + wait, participant=agent("bot"))
    incident, _ = await open_or_join(
        engine, "notetaker", "3 rooms missed their SLA", [("RM_lonely", "lonely")], T0 + 30
    )
    await note(engine, incident, T0 + 31, "restart", "restarted CA_1")
    return engine


@pytest.fixture
async def page(rooms: AsyncEngine, database_url: str, redis_url: str) -> AsyncIterator[httpx.AsyncClient]:
    settings = make_settings(database_url=database_url, redis_url=redis_url, warden_agent_name="notetaker")
    async with serve(create_app(settings)) as url, httpx.AsyncClient(base_url=url) as client:
        yield client


def row(html: str, room: str) -> str:
    found = re.search(rf'<tr data-room="{re.escape(room)}".*?</tr>', html, re.S)
    assert found, f"no row for {room}"
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", found.group(0))).strip()


def bar(html: str, label: str) -> int:
    found = re.search(rf'data-label="{re.escape(label)}" data-count="(\d+)"', html)
    assert found, f"no bar {label}"
    return int(found.group(1))


async def test_rooms_page_shows_state_people_agent_and_time_to_agent(page: httpx.AsyncClient) -> None:
    html = (await page.get("/")).text
    assert row(html, "quick").startswith("quick agent present 1 bot (notetaker) 4.0 s")
    assert row(html, "slow").startswith("slow agent present 1 bot (notetaker) 40.0 s")
    lonely = row(html, "lonely")
    assert lonely.startswith("lonely waiting 1 none -") and re.search(r"IN_\w+", lonely)
    assert 'data-state="waiting"' in html and "badge phase-waiting" in html


async def test_histogram_counts_each_wait_in_its_bucket(page: httpx.AsyncClient) -> None:
    html = (await page.get("/", params={"window": "day"})).text
    assert (bar(html, "2-5 s"), bar(html, "30-60 s"), bar(html, "no agent yet")) == (1, 1, 2)
    assert sum(bar(html, b.label) for b in histogram_bars([], 0, 15)) == 4
    assert "2 rooms got their agent in the last day: median 4.0 s, p90 40.0 s" in html


async def test_state_filter_and_fragment(page: httpx.AsyncClient) -> None:
    waiting = (await page.get("/", params={"state": "waiting"})).text
    assert 'data-room="lonely"' in waiting and 'data-room="quick"' not in waiting
    fragment = (await page.get("/", params={"state": "waiting", "fragment": "1"})).text
    assert 'data-room="lonely"' in fragment and "<html" not in fragment


async def test_room_page_draws_timeline_with_sla_deadline(page: httpx.AsyncClient) -> None:
    html = (await page.get("/rooms/lonely")).text
    assert re.search(r'<g class="deadline"><title>join SLA</title>', html)
    assert '<rect class="span people"' in html and '<rect class="span agent"' not in html
    types = re.findall(r'data-type="(\w+)"', html)
    assert types[:3] == ["room_started", "participant_joined", "ScheduleDeadline"]
    quick = (await page.get("/rooms/quick")).text
    assert '<rect class="span agent"' in quick
    assert (await page.get("/rooms/nowhere")).status_code == 404


async def test_incidents_page_shows_rooms_and_actions(page: httpx.AsyncClient) -> None:
    html = re.sub(r"\s+", " ", (await page.get("/incidents")).text)
    assert "3 rooms missed their SLA" in html and 'href="/rooms/RM_lonely" class="waiting"' in html
    assert "<td>restart</td><td>restarted CA_1</td>" in html
    assert "1 (1 still waiting)" in html


async def test_room_names_are_escaped(page: httpx.AsyncClient) -> None:
    html = (await page.get("/")).text
    assert "<b>x</b>" not in html and "&lt;b&gt;x&lt;/b&gt;" in html
    assert (await page.get("/rooms/%3Cb%3Ex%3C%2Fb%3E")).status_code == 200


async def test_dashboard_asks_a_browser_for_the_admin_token(
    rooms: AsyncEngine, database_url: str, redis_url: str
) -> None:
    settings = make_settings(database_url=database_url, redis_url=redis_url, warden_admin_token="s3cret")
    async with serve(create_app(settings)) as url, httpx.AsyncClient(base_url=url) as client:
        refused = await client.get("/")
        assert refused.status_code == 401 and refused.headers["www-authenticate"].startswith("Basic")
        assert "s3cret" not in refused.text
        good = base64.b64encode(b"ops:s3cret").decode()
        bad = base64.b64encode(b"ops:guess").decode()
        assert (await client.get("/incidents", headers={"Authorization": f"Basic {good}"})).status_code == 200
        assert (await client.get("/incidents", headers={"Authorization": f"Basic {bad}"})).status_code == 401
        assert (await client.get("/api/rooms", headers={"Authorization": f"Basic {good}"})).status_code == 200


async def test_no_dashboard_page_may_be_framed(
    page: httpx.AsyncClient, database_url: str, redis_url: str
) -> None:
    answers = [
        await page.get(path)
        for path in ("/", "/rooms/quick", "/rooms/nowhere", "/incidents", "/dead-letters", "/canaries")
    ]
    answers.append(await page.get("/", headers={"X-Forwarded-For": "203.0.113.7"}))  # a refusal, 403
    settings = make_settings(database_url=database_url, redis_url=redis_url, warden_admin_token="s3cret")
    async with serve(create_app(settings)) as url, httpx.AsyncClient(base_url=url) as client:
        answers.append(await client.get("/"))  # a refusal, 401
    assert [a.status_code for a in answers] == [200, 200, 404, 200, 200, 200, 403, 401]
    for answer in answers:
        assert answer.headers["content-security-policy"] == "frame-ancestors 'none'"
        assert answer.headers["x-frame-options"] == "DENY"


def test_percentile_is_nearest_rank() -> None:
    assert (percentile([], 0.5), percentile([3.0, 1.0, 2.0], 0.5), percentile([1.0, 2.0], 0.9)) == (
        None,
        2.0,
        2.0,
    )


async def test_incident_resolves_when_rooms_got_their_agent_without_missing_an_sla(
    engine: AsyncEngine,
) -> None:
    """Rooms join an incident at the restart while merely waiting; one that then gets its agent before
    its SLA never reports a recovery, so settling (the sweep) must see that it needs nothing now."""
    for room in ("early", "late"):
        await feed(engine, "room_started", 0, room, T0)
        await feed(engine, "participant_joined", 1, room, T0 + 1, participant=person("alice"))
    rooms = [("RM_early", "early"), ("RM_late", "late")]
    incident, _ = await open_or_join(engine, "notetaker", "outage", rooms, T0 + 2)
    await feed(engine, "participant_joined", 2, "early", T0 + 3, participant=agent("bot"))
    assert await room_recovered(engine, "notetaker", "", T0 + 4) is None  # "late" still waits
    await feed(engine, "participant_joined", 2, "late", T0 + 5, participant=agent("bot"))
    resolved = await room_recovered(engine, "notetaker", "", T0 + 6)
    assert resolved is not None and (resolved.incident.id, resolved.incident.resolved_at) == (
        incident,
        T0 + 6,
    )


@pytest.fixture
async def hostile(engine: AsyncEngine, database_url: str, redis_url: str) -> AsyncIterator[httpx.AsyncClient]:
    """The dashboard over the rooms of `tests.support.hostile`."""
    await record_rooms(engine, T0)
    settings = make_settings(database_url=database_url, redis_url=redis_url, warden_agent_name="notetaker")
    async with serve(create_app(settings)) as url, httpx.AsyncClient(base_url=url) as client:
        yield client


async def test_hostile_names_are_inert_on_every_page(hostile: httpx.AsyncClient) -> None:
    pages = {path: (await hostile.get(path)).text for path in ("/", "/?fragment=1", "/incidents")}
    for sid in ROOMS:
        pages[sid] = (await hostile.get(f"/rooms/{sid}")).text
    for path, html in pages.items():
        assert not [c for c in RAW if c in html], path  # in text, attributes, titles and the chart
    forge, rooms = pages["RM_forge"], pages["/"]
    assert "<title>evil\\n2026-12-07 03:00:00,000 ERROR warden.worker: FORGED · Warden</title>" in forge
    assert '<tr data-room="evil\\n2026-12-07 03:00:00,000 ERROR warden.worker: FORGED"' in rooms
    assert "caller\\x1b[2J\\x1b]0;pwned\\x07" in forge  # the person, and the timeline's "who"
    assert "<title>participant_joined caller\\x1b[2J" in forge  # the chart's dots
    assert "bidi\\u202eevil" in rooms and "alice\\u202e" in pages["RM_bidi"]


async def test_phone_numbers_written_with_separators_are_masked(hostile: httpx.AsyncClient) -> None:
    shown = (await hostile.get("/")).text + (await hostile.get("/rooms/RM_sip")).text
    api = (await hostile.get("/api/rooms")).text + (await hostile.get("/api/rooms/RM_sip")).text
    for text in (shown, api):
        assert not [d for d in DIGITS if d in text]
        assert "call-•••0100-dashed" in text and "phone-•••0123" in text


async def test_long_names_and_identities_are_clipped_and_long_lists_cut(hostile: httpx.AsyncClient) -> None:
    rooms, room = (await hostile.get("/")).text, (await hostile.get("/rooms/RM_long")).text
    for html in (rooms, room):
        assert f"{LONG[:200]}…(50 more chars)" in html and LONG[:201] not in html
    assert f"{LONG_IDENTITY[:200]}…(50 more chars)" in room and LONG_IDENTITY[:201] not in room
    assert 'title="guest-00, guest-01, guest-02' in rooms and "guest-09 and 2 more" in rooms
    api = (await hostile.get("/api/rooms/RM_long")).json()  # the API keeps them whole
    assert api["name"] == LONG and api["people"][0]["identity"] == LONG_IDENTITY
    missing = await hostile.get("/rooms/" + "z" * 300)
    assert missing.status_code == 404 and "z" * 201 not in missing.text


async def test_a_room_with_people_that_expects_no_agent_is_shown_so_not_idle(
    engine: AsyncEngine, database_url: str, redis_url: str
) -> None:
    """Zero configuration: at the join deadline LiveKit named no agent for the stand-up; two people are
    in it. The rooms page says so in words, and its filter finds it."""
    zero = Policy(join_sla=15.0)
    people = (Participant("alice", "PA_alice", 0), Participant("bob", "PA_bob", 0))
    for n, who in enumerate(people):
        raw = body(
            "participant_joined",
            id=f"EV_su{n}",
            created_at=T0,
            room="standup",
            sid="RM_su",
            participant=person(who.identity),
        )
        await record_event(engine, parse(raw), received_at=T0 + n, rules=zero)
    for kind, at in ((EventKind.DEADLINE_PASSED, T0 + 15.0), (EventKind.PRESENCE_OBSERVED, T0 + 15.2)):
        answer = internal(kind, f"{kind}:RM_su:1", "RM_su", "standup", Fact(1, at, True, people))
        await record_event(engine, answer, received_at=at, rules=zero)
    settings = make_settings(database_url=database_url, redis_url=redis_url, warden_agent_name="")
    async with serve(create_app(settings)) as url, httpx.AsyncClient(base_url=url) as client:
        html = (await client.get("/")).text
        assert row(html, "standup").startswith("standup no agent expected 2 none")
        assert "badge phase-no_agent_expected" in html and "idle" not in row(html, "standup")
        only = (await client.get("/", params={"state": "no_agent_expected"})).text
        assert 'data-room="standup"' in only and re.search(r"no agent expected\s*<b>1</b>", only)

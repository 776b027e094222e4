"""Operators in control (issue 28), in-process: the web's operator routes against a real Redis and
database, the worker's `operator_action` jobs against the stand-in LiveKit, alerts to a stand-in
receiver. An acknowledgement reaches PagerDuty as `acknowledge` with the trigger's `dedup_key` and
Opsgenie by alias, and shows who did it; a restart inside the cooldown is 409 with when it ends; a
re-dispatch is queued, applied through the room's check, refused while under way, and recorded with who
asked. Every refusal (404, 409, 400) changes nothing."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import httpx
import pytest
from arq.constants import job_key_prefix
from arq.jobs import Job
from sqlalchemy import update

from devtools.simulator.serving import serve
from service.app import create_app
from tests.support.cli import run_cli
from tests.support.harness import AGENT, Harness, harness
from tests.support.helpers import agent, person
from tests.support.receiver import Receiver, receiving
from workers.jobs.delivery.operator import operator_action
from workers.jobs.runtime.context import context
from workers.jobs.runtime.lifecycle import shutdown, startup
from workers.queue.advertised import advertise, runs_key
from workers.queue.jobs import OPERATOR_ACTION
from workers.store.incidents import Incident, get_incident, list_incidents
from workers.store.models import DEPLOYMENT_RESTARTS
from workers.store.queries import find_room

TOKEN = "operator-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
ROOM, SID = "room-1", "RM_room-1"
PD, OG = "/v2/enqueue", "/opsgenie/v2/alerts"


def routes(r: Receiver) -> dict[str, object]:
    """A one-room outage restarts the stand-in's Cloud agent; PagerDuty and Opsgenie are told."""
    return {
        "escalation": True,
        "warden_admin_token": TOKEN,
        "warden_outage_rooms": 1,
        "warden_escalation_backoff_seconds": 0.01,
        "lk_agents_url": "{livekit}",
        "warden_cloud_agent_id": "CA_x",
        "warden_pagerduty_routing_key": "pd-routing-key",
        "warden_pagerduty_url": r.url + PD,
        "warden_opsgenie_api_key": "og-key",
        "warden_opsgenie_url": r.url + "/opsgenie/",
    }


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async with receiving() as r:
        yield r


@contextlib.asynccontextmanager
async def web(h: Harness) -> AsyncIterator[httpx.AsyncClient]:
    """The web process's app on the worker's settings (its Redis, its database)."""
    async with serve(create_app(context(h.ctx).settings)) as url, httpx.AsyncClient(base_url=url) as client:
        yield client


async def operator_jobs(h: Harness) -> list[str]:
    """Run the operator's requests the web queued, as the worker would; their outcomes."""
    queue_name = context(h.ctx).settings.warden_queue_name
    outcomes = []
    for member in await h.queue.zrange(queue_name, 0, -1):
        job_id = member.decode()
        if not job_id.startswith("operator:"):
            continue
        info = await Job(job_id, h.queue, _queue_name=queue_name).info()
        assert info is not None, job_id
        await h.queue.zrem(queue_name, job_id)
        await h.queue.delete(job_key_prefix + job_id)
        outcomes.append(await operator_action(h.ctx, *info.args))
        await h.run_escalations()
    return outcomes


async def outage(h: Harness) -> Incident:
    """A person waits 15 s for the agent, up to the real clock's now (which the web judges by): the
    room's breach opens an incident, which restarts the stand-in's Cloud agent."""
    h.clock.now = time.time() - 15
    h.fake.cloud_agents = {"CA_x": AGENT}
    h.fake.join(ROOM, "alice")
    await h.send("participant_joined", room=ROOM, sid=SID, participant=person("alice"))
    h.advance(15)
    await h.run_deadline(SID, 1)
    found, _ = await list_incidents(h.engine, limit=1, offset=0)
    return found[0]


def refused(response: httpx.Response, status: int, words: str) -> None:
    assert response.status_code == status, response.text
    assert words in response.json()["error"], response.json()


async def test_an_acknowledgement_reaches_pagerduty_and_opsgenie_and_shows_who_did_it(
    redis_url: str, database_url: str, receiver: Receiver
) -> None:
    async with harness(redis_url, database_url, **routes(receiver)) as h, web(h) as client:
        incident = await outage(h)
        refused(await client.post("/api/incidents/IN_nope/ack", headers=AUTH), 404, "no such incident")
        assert (await client.post(f"/api/incidents/{incident.id}/ack")).status_code == 401
        asked = await client.post(f"/api/incidents/{incident.id}/ack", headers=AUTH)
        assert asked.status_code == 202 and asked.json() == {
            "status": "queued",
            "action": "ack",
            "by": "admin",
            "incident_id": incident.id,
        }
        refused(await client.post(f"/api/incidents/{incident.id}/ack", headers=AUTH), 409, "queued already")
        assert await operator_jobs(h) == ["restarted"]
        trigger, ack = (r.json() for r in receiver.at(PD))
        assert (trigger["event_action"], ack["event_action"]) == ("trigger", "acknowledge")
        assert ack == {
            "routing_key": "pd-routing-key",
            "event_action": "acknowledge",
            "dedup_key": incident.id,
        }
        assert trigger["dedup_key"] == incident.id
        create, acknowledge = receiver.at("/opsgenie")
        assert create.json()["alias"] == incident.id
        assert acknowledge.path == f"/opsgenie/v2/alerts/{incident.id}/acknowledge?identifierType=alias"
        assert acknowledge.json()["user"] == "admin"
        shown = (await client.get(f"/api/incidents/{incident.id}", headers=AUTH)).json()
        assert shown["acknowledged_by"] == "admin" and shown["acknowledged_at"] is not None
        assert {"action": "acknowledged", "outcome": "by admin"} in [
            {k: a[k] for k in ("action", "outcome")} for a in shown["actions"]
        ]
        again = await client.post(f"/api/incidents/{incident.id}/ack", headers=AUTH)
        refused(again, 409, "was acknowledged by admin")
        assert await operator_jobs(h) == [] and len(receiver.at(PD)) == 2


async def test_a_restart_within_the_cooldown_is_409_with_when_it_ends_and_after_it_restarts(
    redis_url: str, database_url: str, receiver: Receiver
) -> None:
    async with harness(redis_url, database_url, **routes(receiver)) as h, web(h) as client:
        incident = await outage(h)
        assert h.fake.restarts == ["CA_x"]
        asked = await client.post(f"/api/incidents/{incident.id}/restart", headers=AUTH)
        refused(asked, 409, "WARDEN_RESTART_COOLDOWN_SECONDS (300 s) runs until")
        ends = datetime.fromisoformat(asked.json()["cooldown_ends"]).timestamp()
        assert ends == pytest.approx(h.clock.now + 300, abs=1)
        assert await operator_jobs(h) == [] and h.fake.restarts == ["CA_x"]
        async with h.engine.begin() as connection:  # the last restart was ten minutes ago
            await connection.execute(update(DEPLOYMENT_RESTARTS).values(claimed_at=time.time() - 600))
        window = await client.post(
            "/api/maintenance", json={"agent": AGENT, "minutes": 30, "reason": "deploy"}, headers=AUTH
        )
        assert window.status_code == 201, window.text
        asked = await client.post(f"/api/incidents/{incident.id}/restart", headers=AUTH)
        refused(asked, 409, "no restart while it lasts")
        ended = await client.delete(f"/api/maintenance/{window.json()['id']}", headers=AUTH)
        assert ended.status_code == 200, ended.text
        asked = await client.post(f"/api/incidents/{incident.id}/restart", headers=AUTH)
        assert asked.status_code == 202 and asked.json()["by"] == "admin"
        assert await operator_jobs(h) == ["restarting"]  # claimed by the step, then called and landed
        assert h.fake.restarts == ["CA_x", "CA_x"]
        found = await get_incident(h.engine, incident.id)
        assert found is not None and ("restart", "asked by admin") in [(a, o) for _, a, o, _ in found.actions]
        refused(await client.post("/api/incidents/IN_nope/restart", headers=AUTH), 404, "no such incident")


async def test_a_redispatch_by_hand_is_checked_made_once_and_in_the_timeline_with_who_asked(
    redis_url: str, database_url: str
) -> None:
    async with harness(redis_url, database_url, warden_admin_token=TOKEN) as h, web(h) as client:
        h.clock.now = time.time()  # the web judges a dispatch's age by the real clock
        h.fake.join(ROOM, "alice")
        await h.send("participant_joined", room=ROOM, sid=SID, participant=person("alice"))
        url = f"/api/rooms/{ROOM}/redispatch"
        for body, words in (
            (b"not json", "send JSON"),
            (b"{}", "send JSON"),
            (b'{"agent": 7}', "send JSON"),
            (b'["notetaker"]', "send JSON"),
            (b'{"agent": "' + b"x" * 200 + b'"}', "agent is"),
        ):
            refused(await client.post(url, content=body, headers=AUTH), 400, words)
        refused(
            await client.post("/api/rooms/nope/redispatch", json={"agent": AGENT}, headers=AUTH),
            404,
            "no such room",
        )
        refused(
            await client.post(url, json={"agent": "other"}, headers=AUTH), 404, "does not expect agent other"
        )
        assert await operator_jobs(h) == [] and h.fake.created == []
        asked = await client.post(url, json={"agent": AGENT}, headers=AUTH)
        assert asked.status_code == 202 and asked.json() == {
            "status": "queued",
            "action": "redispatch",
            "by": "admin",
            "room": ROOM,
            "agent": AGENT,
        }
        refused(await client.post(url, json={"agent": AGENT}, headers=AUTH), 409, "queued already")
        await operator_jobs(h)
        refused(await client.post(url, json={"agent": AGENT}, headers=AUTH), 409, "under way")
        await h.fire(SID)  # the check due at once: LiveKit lists no agent and no dispatch
        assert h.fake.created == [(ROOM, AGENT)] and len(h.fake.live_dispatches(ROOM, AGENT)) == 1
        refused(await client.post(url, json={"agent": AGENT}, headers=AUTH), 409, "may still bring its agent")
        found = await find_room(h.engine, ROOM)
        assert found is not None
        (line,) = [e for e in found.timeline if e.name == "redispatch_asked"]
        assert line.data["fact"]["by"] == "admin"
        shown: dict[str, Any] = (await client.get(f"/api/rooms/{ROOM}", headers=AUTH)).json()
        (entry,) = [e for e in shown["timeline"] if e["type"] == "redispatch_asked"]
        assert entry["detail"]["by"] == "admin" and entry["source"] == "warden"
        h.fake.join(ROOM, "agent-1", agent_name=AGENT)
        await h.send("participant_joined", room=ROOM, sid=SID, participant=agent("agent-1", AGENT))
        refused(await client.post(url, json={"agent": AGENT}, headers=AUTH), 409, "is in the room")
        assert h.fake.created == [(ROOM, AGENT)]


async def test_a_redispatch_asked_by_sid_answers_with_the_room_s_name_masked(
    redis_url: str, database_url: str
) -> None:
    """A SIP room's name holds the caller's number: the API masks it, the 202 included."""
    room, sid = "call-+14155550123", "RM_sip"
    async with harness(redis_url, database_url, warden_admin_token=TOKEN) as h, web(h) as client:
        h.fake.join(room, "alice")
        await h.send("participant_joined", room=room, sid=sid, participant=person("alice"))
        asked = await client.post(f"/api/rooms/{sid}/redispatch", json={"agent": AGENT}, headers=AUTH)
        assert asked.status_code == 202 and asked.json()["room"] == "call-\u2022\u2022\u20220123"
        assert "5550123" not in asked.text


async def test_the_cli_acknowledges_restarts_and_redispatches_saying_why_when_refused(
    redis_url: str,
    database_url: str,
    receiver: Receiver,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("WARDEN_ADMIN_TOKEN", TOKEN)
    async with harness(redis_url, database_url, **routes(receiver)) as h, web(h) as client:
        incident = await outage(h)
        url = ("--url", str(client.base_url))
        code, out = await run_cli(capsys, *url, "incident", "restart", incident.id)
        assert code == 1 and "WARDEN_RESTART_COOLDOWN_SECONDS" in out and "cooldown ends at" in out
        code, out = await run_cli(capsys, *url, "incident", "ack", incident.id)
        assert code == 0 and f"acknowledgement of incident {incident.id} queued, as admin" in out
        await operator_jobs(h)
        code, out = await run_cli(capsys, *url, "incidents")
        assert code == 0 and "admin at" in out
        code, out = await run_cli(capsys, *url, "redispatch", ROOM, "other")
        assert code == 1 and "does not expect agent other" in out
        code, out = await run_cli(capsys, *url, "redispatch", ROOM, AGENT)
        assert code == 1 and f"a dispatch of {AGENT} was made" in out, out  # at the SLA: just now


async def test_the_dashboards_buttons_post_forms_and_come_back_saying_what_happened(
    redis_url: str, database_url: str, receiver: Receiver
) -> None:
    async with harness(redis_url, database_url, **routes(receiver)) as h, web(h) as client:
        incident = await outage(h)
        page = await client.get("/incidents", headers=AUTH)
        assert 'name="ack"' in page.text and 'name="restart"' in page.text  # an operator's page
        answer = await client.post(f"/incidents/{incident.id}/ack", headers=AUTH)
        assert answer.status_code == 303 and answer.headers["x-frame-options"] == "DENY"
        assert answer.headers["location"].startswith("/incidents?said=acknowledgement+queued")
        assert answer.headers["location"].endswith(f"#{incident.id}")
        shown = await client.get(answer.headers["location"], headers=AUTH)
        assert "acknowledgement queued, as admin" in shown.text
        elsewhere = {**AUTH, "Sec-Fetch-Site": "cross-site"}  # another site's link with words in it
        assert (
            "acknowledgement queued"
            not in (await client.get(answer.headers["location"], headers=elsewhere)).text
        )
        await operator_jobs(h)
        page = await client.get("/incidents", headers=AUTH)
        assert "by admin at" in page.text and 'name="ack"' not in page.text
        answer = await client.post(f"/incidents/{incident.id}/restart", headers=AUTH)
        assert "said=refused" in answer.headers["location"]
        room = await client.get(f"/rooms/{ROOM}", headers=AUTH)
        assert 'name="redispatch"' in room.text
        answer = await client.post(f"/rooms/{SID}/redispatch", content=b"expected=7", headers=AUTH)
        assert answer.status_code == 303 and "refused" in answer.headers["location"]
        padded = b"expected=0&" + b"x" * 5000  # a form no page of Warden's sends: never read whole
        answer = await client.post(f"/rooms/{SID}/redispatch", content=padded, headers=AUTH)
        assert answer.status_code == 303 and "over+4096+bytes" in answer.headers["location"]
        answer = await client.post(f"/rooms/{SID}/redispatch", content=b"expected=0", headers=AUTH)
        said = (await client.get(answer.headers["location"], headers=AUTH)).text
        assert f"refused: a dispatch of {AGENT} was made" in said  # the first expected agent, just dispatched
        assert (await client.post(f"/incidents/{incident.id}/ack")).status_code == 401  # no token


async def test_a_viewer_sees_no_button_and_its_posts_and_another_sites_are_403_changing_nothing(
    redis_url: str, database_url: str, receiver: Receiver
) -> None:
    viewer = {"Authorization": "Bearer view-token-0123"}
    tokens = {"warden_tokens": "vera:viewer:view-token-0123,otto:operator:oper-token-0123"}
    async with harness(redis_url, database_url, **routes(receiver), **tokens) as h, web(h) as client:
        incident = await outage(h)
        page = await client.get("/incidents", headers=viewer)
        assert page.status_code == 200 and 'name="ack"' not in page.text
        room = await client.get(f"/rooms/{ROOM}", headers=viewer)
        assert room.status_code == 200 and 'name="redispatch"' not in room.text
        evil = {**AUTH, "Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"}
        for path, body in (
            (f"/api/incidents/{incident.id}/ack", None),
            (f"/api/incidents/{incident.id}/restart", None),
            (f"/api/rooms/{ROOM}/redispatch", {"agent": AGENT}),
            (f"/incidents/{incident.id}/ack", None),
            (f"/rooms/{SID}/redispatch", None),
        ):
            for headers in (viewer, evil):
                answer = await client.post(path, json=body, headers=headers)
                assert answer.status_code == 403, (path, headers, answer.text)
        assert await operator_jobs(h) == []
        asked = await client.post(
            f"/api/incidents/{incident.id}/ack", headers={"Authorization": "Bearer oper-token-0123"}
        )
        assert asked.status_code == 202 and asked.json()["by"] == "otto"


async def test_with_no_worker_that_applies_requests_the_web_refuses_503_and_queues_nothing(
    redis_url: str, database_url: str, receiver: Receiver
) -> None:
    """The web upgraded before the worker: the running worker (one from before operators' requests, or
    none) has not said it applies them, so an acknowledgement would never be applied; it is refused."""
    async with harness(redis_url, database_url, **routes(receiver)) as h, web(h) as client:
        incident = await outage(h)
        queue_name = context(h.ctx).settings.warden_queue_name
        await shutdown(h.ctx)  # the worker of this release stops saying it runs them ...
        await startup(h.ctx, settings=context(h.ctx).settings, clock=h.clock)
        await h.queue.delete(runs_key(queue_name, OPERATOR_ACTION))  # ... its word expires
        asked = await client.post(f"/api/incidents/{incident.id}/ack", headers=AUTH)
        refused(asked, 503, "upgrade the worker first")
        assert await operator_jobs(h) == [], "nothing queued"
        await advertise(h.queue, queue_name, [OPERATOR_ACTION])  # an upgraded worker starts
        asked = await client.post(f"/api/incidents/{incident.id}/ack", headers=AUTH)
        assert asked.status_code == 202, asked.text
        assert await operator_jobs(h) == ["restarted"]

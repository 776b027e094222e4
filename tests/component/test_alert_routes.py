"""Alert routes beside Slack, in-process: PagerDuty (Events API v2), Opsgenie (Alert API) and the signed
incident webhook, all at once, against a stand-in receiver on a loopback port (a real HTTP server).
Payloads field by field; a 4xx is final, a 5xx tried again by the sweep; every attempt in the incident's
log; no key, secret or webhook URL in a log line or in the incident's log."""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import select

from tests.support.harness import AGENT, Harness, harness
from tests.support.helpers import agent, person
from tests.support.receiver import Receiver, receiving
from workers.jobs.rooms.crons import sweep
from workers.logs import configure
from workers.store.incidents import Incident, get_incident, list_incidents
from workers.store.models import OUTBOX

ROOM, SID = "room-1", "RM_room-1"
ROUTING_KEY = "pd-routing-key-0123456789abcdef"
GENIE_KEY = "og-api-key-fedcba9876543210"
HOOK_SECRET = "incident-hook-secret"
SLACK_PATH = "/slack/T000/B000/slack-token-in-the-path"
HOOK_PATH = "/hook/router-token-in-the-path"
SECRETS = (ROUTING_KEY, GENIE_KEY, HOOK_SECRET, "slack-token-in-the-path", "router-token-in-the-path")
PD, OG = "/v2/enqueue", "/opsgenie/v2/alerts"
RESTART = "LiveKit Cloud agent restart"


def every_route(r: Receiver, *, cloud: bool = True) -> dict[str, object]:
    """Settings: a one-room outage (restarting the stand-in's Cloud agent unless not `cloud`), and
    alerts go everywhere."""
    return {
        "escalation": True,
        "warden_outage_rooms": 1,
        "warden_escalation_backoff_seconds": 0.01,
        **({"lk_agents_url": "{livekit}", "warden_cloud_agent_id": "CA_x"} if cloud else {}),
        "warden_alert_webhook_url": r.url + SLACK_PATH,
        "warden_pagerduty_routing_key": ROUTING_KEY,
        "warden_pagerduty_url": r.url + PD,
        "warden_opsgenie_api_key": GENIE_KEY,
        "warden_opsgenie_url": r.url + "/opsgenie/",
        "warden_incident_webhook_url": r.url + HOOK_PATH,
        "warden_incident_webhook_secret": HOOK_SECRET,
    }


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async with receiving() as r:
        yield r


async def outage(h: Harness) -> Incident:
    """A person waits, the agent never comes: the join SLA passes and the room's breach opens an
    incident (and restarts the Cloud agent)."""
    h.fake.cloud_agents = {"CA_x": AGENT}
    h.fake.join(ROOM, "alice")
    await h.send("participant_joined", room=ROOM, sid=SID, participant=person("alice"))
    h.advance(15)
    await h.run_deadline(SID, 1)
    return await the_incident(h)


async def agent_comes(h: Harness) -> None:
    h.fake.join(ROOM, "agent-1", agent_name=AGENT)
    await h.send("participant_joined", room=ROOM, sid=SID, participant=agent("agent-1", AGENT))


async def the_incident(h: Harness) -> Incident:
    found, _ = await list_incidents(h.engine, limit=1, offset=0)
    incident = await get_incident(h.engine, found[0].id)
    assert incident is not None
    return incident


async def sweep_later(h: Harness, seconds: float = 6) -> None:
    """The next sweep, `seconds` later (past the outbox's grace and the backoff of a first failure)."""
    h.advance(seconds)
    await sweep(h.ctx)
    await h.run_escalations()


async def outgoing_rows(h: Harness) -> list[str]:
    async with h.engine.connect() as connection:
        return list(await connection.scalars(select(OUTBOX.c.id).where(OUTBOX.c.room_sid.is_(None))))


def log_of(incident: Incident, action: str) -> list[str]:
    return [outcome for _, a, outcome, _ in incident.actions if a == action]


def assert_no_secret(*texts: str) -> None:
    for text in texts:
        leaked = [s for s in SECRETS if s in text]
        assert leaked == [], f"{leaked} in {text[:300]!r}"


async def test_one_incident_reaches_pagerduty_opsgenie_the_webhook_and_slack_field_by_field(
    redis_url: str, database_url: str, receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    configure("DEBUG", process="worker")  # as the worker process logs (httpx held at WARNING)
    caplog.set_level(logging.DEBUG)
    async with harness(redis_url, database_url, **every_route(receiver)) as h:
        incident = await outage(h)
        assert h.fake.restarts == ["CA_x"]
        await agent_comes(h)
        incident = await the_incident(h)
        assert incident.resolved_at is not None
        for _ in range(3):  # nothing is left to send, nothing is sent again
            await sweep_later(h, 30)
        assert await outgoing_rows(h) == []
    opened = f"Warden incident {incident.id}: agent '{AGENT}' is not coming"
    reason = log_of(incident, "opened")[0]  # the incident's first line: why it opened

    trigger, resolve = (r.json() for r in receiver.at(PD))
    assert trigger.pop("payload") == {
        "summary": f"{opened} — {reason}. 1 room(s) affected so far. Warden is trying: {RESTART}.",
        "source": f"warden: agent {AGENT}",
        "severity": "critical",
        "timestamp": trigger_timestamp(receiver),
        "component": AGENT,
        "group": "livekit agents",
        "class": "agent not joining rooms",
        "custom_details": {
            "incident_id": incident.id,
            "agent": AGENT,
            "rooms_affected": [ROOM],
            "warden_is_doing": RESTART,
            "kind": "outage",
            "worker_ids": [],
        },
    }
    assert trigger == {"routing_key": ROUTING_KEY, "event_action": "trigger", "dedup_key": incident.id}
    assert resolve == {"routing_key": ROUTING_KEY, "event_action": "resolve", "dedup_key": incident.id}

    create, close = receiver.at("/opsgenie")
    assert [create.path, close.path] == [OG, f"{OG}/{incident.id}/close?identifierType=alias"]
    assert create.headers["authorization"] == close.headers["authorization"] == f"GenieKey {GENIE_KEY}"
    alert = create.json()
    assert alert["alias"] == incident.id
    assert alert["message"].startswith(opened) and len(alert["message"]) <= 130
    assert alert["description"].startswith(opened) and "1 room(s) affected" in alert["description"]
    assert alert["details"] == {
        "incident_id": incident.id,
        "agent": AGENT,
        "rooms_affected": ROOM,
        "warden_is_doing": RESTART,
        "kind": "outage",
        "worker_ids": "",
    }
    assert (alert["entity"], alert["source"], alert["priority"]) == (AGENT, "Warden", "P1")
    assert close.json()["source"] == "Warden"
    assert close.json()["note"].startswith(f"Warden incident {incident.id} resolved: agent '{AGENT}' is back")

    events = receiver.at(HOOK_PATH)
    assert [e.json()["event"] for e in events] == ["opened", "restarted", "resolved"]
    for event in events:
        expected = "sha256=" + hmac.new(HOOK_SECRET.encode(), event.body, hashlib.sha256).hexdigest()
        assert event.headers["x-warden-signature"] == expected
        assert event.headers["x-warden-event"] == event.json()["event"]
        assert event.headers["x-warden-incident"] == incident.id
        assert set(event.json()) == {
            "event",
            "incident_id",
            "agent_name",
            "at",
            "summary",
            "rooms",
            "warden_is_doing",
            "kind",
            "worker_ids",
        }
        assert (event.json()["incident_id"], event.json()["agent_name"]) == (incident.id, AGENT)
    first = events[0].json()
    assert first["summary"].startswith(opened) and first["rooms"] == [ROOM]
    assert first["warden_is_doing"] == RESTART
    assert events[1].json()["summary"].startswith(f"Warden incident {incident.id}: agent '{AGENT}' restarted")

    slack = [r.json()["text"] for r in receiver.at(SLACK_PATH)]
    assert [t.split(" ")[0] for t in slack] == [":rotating_light:", ":white_check_mark:"]  # as before

    for action, outcome in [
        ("PagerDuty opened", "PagerDuty answered HTTP 202 (attempt 1)"),
        ("PagerDuty resolved", "PagerDuty answered HTTP 202 (attempt 1)"),
        ("Opsgenie opened", "Opsgenie answered HTTP 202 (attempt 1)"),
        ("Opsgenie resolved", "Opsgenie answered HTTP 202 (attempt 1)"),
        ("incident webhook opened", "incident webhook answered HTTP 202 (attempt 1)"),
        ("incident webhook restarted", "incident webhook answered HTTP 202 (attempt 1)"),
        ("incident webhook resolved", "incident webhook answered HTTP 202 (attempt 1)"),
        ("alert opened", "alert webhook answered HTTP 202 (attempt 1)"),
        ("alert resolved", "alert webhook answered HTTP 202 (attempt 1)"),
    ]:
        assert log_of(incident, action) == [outcome], action
    assert_no_secret(caplog.text, *(f"{a}: {o}" for _, a, o, _ in incident.actions))
    assert any(r.name.startswith("warden.") for r in caplog.records)  # the log was captured


def trigger_timestamp(receiver: Receiver) -> str:
    """PagerDuty's `timestamp` is ISO 8601 with its offset: checked for its form, then returned."""
    stamp = receiver.at(PD)[0].json()["payload"]["timestamp"]
    assert stamp.endswith("+00:00") and "T" in stamp, stamp
    return str(stamp)


async def test_the_incident_webhook_hears_the_follow_up_when_the_restart_did_not_help(
    redis_url: str, database_url: str, receiver: Receiver
) -> None:
    settings = every_route(receiver)
    only_webhook = {k: v for k, v in settings.items() if "pagerduty" not in k and "opsgenie" not in k}
    async with harness(redis_url, database_url, **only_webhook) as h:
        incident = await outage(h)  # and no agent ever comes, restart or not
        for _ in range(12):
            h.advance(15)
            room = await h.room(SID)
            if room.deadline is not None and room.deadline.at <= h.clock.now:
                await h.run_deadline(SID, room.deadline.attempt)
        events = [e.json() for e in receiver.at(HOOK_PATH)]
        assert [e["event"] for e in events] == ["opened", "restarted", "followup"]
        assert events[2]["summary"].startswith(
            f"Warden incident {incident.id}: agent '{AGENT}' still does not come after the restart"
        )
        assert receiver.at(PD) == [] and receiver.at("/opsgenie") == []
        assert len(receiver.at(SLACK_PATH)) == 2  # opened, follow-up: Slack hears no "restarted"


async def test_the_incident_webhook_hears_a_restart_that_failed(
    redis_url: str, database_url: str, receiver: Receiver
) -> None:
    async with harness(redis_url, database_url, **every_route(receiver)) as h:
        h.fake.fail("RestartAgent", 403)
        incident = await outage(h)
        assert h.fake.restarts == []
        assert [e.json()["event"] for e in receiver.at(HOOK_PATH)] == ["opened", "restart-failed"]
        assert len(receiver.at(PD)) == len(receiver.at("/opsgenie")) == 1  # opened only: still open
        assert log_of(await the_incident(h), "incident webhook restart-failed") == [
            "incident webhook answered HTTP 202 (attempt 1)"
        ]
        assert incident.resolved_at is None


ROUTES = [("PagerDuty", PD), ("Opsgenie", OG), ("incident webhook", HOOK_PATH)]


@pytest.mark.parametrize(("name", "path"), ROUTES, ids=["pagerduty", "opsgenie", "webhook"])
async def test_a_route_refusing_with_4xx_is_tried_once_recorded_and_the_others_still_land(
    redis_url: str, database_url: str, receiver: Receiver, name: str, path: str
) -> None:
    receiver.answer(path, 400)
    async with harness(redis_url, database_url, **every_route(receiver, cloud=False)) as h:
        incident = await outage(h)  # no restart to make: one event per route
        for _ in range(3):
            await sweep_later(h, 30)
        assert len(receiver.at(path)) == 1 and await outgoing_rows(h) == []
        incident = await the_incident(h)
        assert log_of(incident, f"{name} opened") == [
            f"refused for good (attempt 1): {name} answered HTTP 400"
        ]
        for other, other_path in ROUTES:
            if other != name:
                assert receiver.at(other_path), other
                assert log_of(incident, f"{other} opened") == [f"{other} answered HTTP 202 (attempt 1)"]
        assert_no_secret(*(f"{a}: {o}" for _, a, o, _ in incident.actions))


@pytest.mark.parametrize(("name", "path"), ROUTES, ids=["pagerduty", "opsgenie", "webhook"])
async def test_a_route_answering_5xx_is_tried_again_by_the_sweep_until_it_lands(
    redis_url: str, database_url: str, receiver: Receiver, name: str, path: str
) -> None:
    receiver.answer(path, 503, 502)
    async with harness(redis_url, database_url, **every_route(receiver, cloud=False)) as h:
        await outage(h)  # no restart to make: one event per route
        assert len(receiver.at(path)) == 1
        await sweep_later(h)  # 1 s of backoff after the first failure, past the sweep's grace
        assert len(receiver.at(path)) == 2
        await sweep_later(h)
        assert len(receiver.at(path)) == 3
        for _ in range(3):
            await sweep_later(h, 30)
        assert len(receiver.at(path)) == 3 and await outgoing_rows(h) == []
        bodies = {r.body for r in receiver.at(path)}
        assert len(bodies) == 1  # the same event each time: the same dedup key, alias, signature
        assert log_of(await the_incident(h), f"{name} opened") == [
            f"failed (attempt 1): {name} answered HTTP 503; tried again later",
            f"failed (attempt 2): {name} answered HTTP 502; tried again later",
            f"{name} answered HTTP 202 (attempt 3)",
        ]
        await agent_comes(h)  # the resolution is a row of its own: it goes out at once
        assert len(receiver.at(path if name != "Opsgenie" else "/opsgenie")) == 4


async def test_slack_shows_an_agents_name_literally() -> None:
    """Slack reads `<!channel>` as a mention of everyone and `<url|text>` as a link: a value in an alert
    is escaped so that Slack shows it as it was written."""
    import json

    import httpx
    import respx

    from workers.adapters.hooks import SlackAlerter

    url = "https://hooks.example.com/services/T0/B0/secret"
    with respx.mock() as mock:
        route = mock.post(url).respond(200)
        async with httpx.AsyncClient() as client:
            await SlackAlerter(client, url).send("agent '<!channel> & <https://evil.example|click>' is down")
    sent = json.loads(route.calls.last.request.content)["text"]
    assert sent == "agent '&lt;!channel&gt; &amp; &lt;https://evil.example|click&gt;' is down"

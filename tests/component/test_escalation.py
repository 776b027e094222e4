"""Escalation, in-process: the worker's jobs and its real escalation against the stand-in LiveKit
(which also serves the CloudAgent API), with Warden's own outgoing HTTP (alerts, deploy hook) on respx."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import AsyncIterator

import httpx
import pytest
import respx

from tests.support.harness import AGENT, Harness, harness
from tests.support.helpers import agent, person
from workers.core.room import Phase
from workers.jobs.rooms.crons import sweep
from workers.store.incidents import get_incident, list_incidents

ALERTS = "https://hooks.example.test/alerts"
HOOK = "https://deploy.example.test/hook"
ROOMS = [f"room-{i}" for i in range(8)]
# The real escalation, the stand-in's CloudAgent API, alerts on respx, fast retries.
CLOUD: dict[str, object] = {
    "escalation": True,
    "lk_agents_url": "{livekit}",
    "warden_alert_webhook_url": ALERTS,
    "warden_escalation_backoff_seconds": 0.01,
}


def sid(room: str) -> str:
    return f"RM_{room}"


@pytest.fixture
def alerts() -> AsyncIterator[respx.Route]:
    with respx.mock(assert_all_mocked=True) as mock:
        yield mock.post(ALERTS).mock(return_value=httpx.Response(200, text="ok"))


async def everyone_waits(h: Harness) -> None:
    for room in ROOMS:
        h.fake.join(room, "alice")
        await h.send("participant_joined", room=room, sid=sid(room), participant=person("alice"))


def agents_come_after_restart(h: Harness) -> list[str]:
    """A dormant Cloud deployment: dispatches go unanswered until RestartAgent; the rooms whose
    dispatch was answered are returned in a list the test drains (their agents' webhooks)."""
    answered: list[str] = []
    restarted = {"yes": False}
    h.fake.on_restart = lambda _agent_id: restarted.update(yes=True)
    h.fake.on_dispatch = lambda d: answered.append(d.room) if restarted["yes"] else None
    return answered


async def agents_join(h: Harness, answered: list[str]) -> None:
    while answered:
        room = answered.pop(0)
        h.fake.join(room, f"agent-{room}", agent_name=AGENT)
        await h.send(
            "participant_joined", room=room, sid=sid(room), participant=agent(f"agent-{room}", AGENT)
        )


async def fire_all_due(h: Harness, answered: list[str]) -> None:
    """Run every room's deadline that is due by now, delivering agents' joins as they happen."""
    for room in ROOMS:
        current = await h.room(sid(room))
        if current.deadline is not None and current.deadline.at <= h.clock.now:
            await h.run_deadline(sid(room), current.deadline.attempt)
            await agents_join(h, answered)


@pytest.mark.parametrize("agent_id", ["CA_notetaker", ""], ids=["configured-id", "found-by-name"])
async def test_outage_of_8_rooms_gets_one_restart_then_every_room_its_agent(
    redis_url: str, database_url: str, alerts: respx.Route, agent_id: str
) -> None:
    async with harness(
        redis_url,
        database_url,
        escalation=True,
        lk_agents_url="{livekit}",
        warden_cloud_agent_id=agent_id,
        warden_alert_webhook_url=ALERTS,
        warden_escalation_backoff_seconds=0.01,
    ) as h:
        h.fake.cloud_agents = {"CA_notetaker": AGENT}
        answered = agents_come_after_restart(h)
        await everyone_waits(h)
        for _ in range(12):  # SLA, restart grace, confirm: walk the clock until nothing is due
            h.advance(10)
            await fire_all_due(h, answered)
        assert h.fake.restarts == ["CA_notetaker"]
        before_restart = h.fake.calls[: h.fake.calls.index(("RestartAgent", ""))]
        assert (("ListAgents", "") in before_restart) == (agent_id == "")  # the id is found by agent name
        for room in ROOMS:
            assert (await h.room(sid(room))).phase is Phase.AGENT_PRESENT, room
            assert len(h.fake.live_dispatches(room, AGENT)) == 1
        found, total = await list_incidents(h.engine, limit=10, offset=0)
        assert total == 1
        incident = found[0]
        assert incident.resolved_at is not None and len(incident.rooms) == 8 and incident.waiting_rooms == 0
        steps = [a for _, a, _, _ in incident.actions if not a.startswith("alert ")]
        assert steps[:2] == ["opened", "LiveKit Cloud agent restart"]
        assert [(a, o) for _, a, o, _ in incident.actions if a.startswith("alert ")] == [
            ("alert opened", "alert webhook answered HTTP 200 (attempt 1)"),
            ("alert resolved", "alert webhook answered HTTP 200 (attempt 1)"),
        ]
        texts = [json.loads(call.request.content)["text"] for call in alerts.calls]
        assert len(texts) == 2
        assert texts[0].startswith(f":rotating_light: Warden incident {incident.id}")
        assert texts[1].startswith(f":white_check_mark: Warden incident {incident.id} resolved")


async def test_restart_failing_once_with_503_is_retried_into_one_restart(
    redis_url: str, database_url: str, alerts: respx.Route
) -> None:
    async with harness(
        redis_url, database_url, **CLOUD, warden_cloud_agent_id="CA_x", warden_outage_rooms=1
    ) as h:
        h.fake.cloud_agents = {"CA_x": AGENT}
        h.fake.fail("RestartAgent", 503)
        await everyone_waits(h)
        h.advance(15)
        await h.run_deadline(sid(ROOMS[0]), 1)
        assert h.fake.restarts == ["CA_x"]
        assert [c for c in h.fake.calls if c[0] == "RestartAgent"] == [("RestartAgent", "")] * 2
        for _ in range(4):  # more breaches and failures of the same outage: no second restart
            h.advance(25)
            await fire_all_due(h, [])
        assert h.fake.restarts == ["CA_x"]


async def test_without_a_restart_configured_the_incident_is_raised_and_alerted_only(
    redis_url: str, database_url: str, alerts: respx.Route
) -> None:
    async with harness(
        redis_url,
        database_url,
        escalation=True,
        warden_alert_webhook_url=ALERTS,
        warden_outage_rooms=1,
        warden_escalation_backoff_seconds=0.01,
    ) as h:
        await everyone_waits(h)
        h.advance(15)
        await h.run_deadline(sid(ROOMS[0]), 1)
        assert not [c for c in h.fake.calls if c[0] in ("RestartAgent", "ListAgents")]
        found, _ = await list_incidents(h.engine, limit=10, offset=0)
        assert len(found) == 1 and found[0].resolved_at is None
        assert ("restart", "not attempted: no Cloud agent and no deploy hook configured") in [
            (a, o) for _, a, o, _ in found[0].actions
        ]
        assert len(alerts.calls) == 1
        assert "nothing to restart" in json.loads(alerts.calls[0].request.content)["text"]


async def test_deploy_hook_is_signed_and_retried_on_5xx(redis_url: str, database_url: str) -> None:
    with respx.mock(assert_all_mocked=True) as mock:
        hook = mock.post(HOOK).mock(side_effect=[httpx.Response(502), httpx.Response(200)])
        async with harness(
            redis_url,
            database_url,
            escalation=True,
            warden_deploy_hook_url=HOOK,
            warden_deploy_hook_secret="hook-secret",
            warden_outage_rooms=1,
            warden_escalation_backoff_seconds=0.01,
        ) as h:
            await everyone_waits(h)
            h.advance(15)
            await h.run_deadline(sid(ROOMS[0]), 1)
            assert hook.call_count == 1
            h.advance(6)  # the outbox's backoff, past the sweep's grace
            await sweep(h.ctx)
            assert hook.call_count == 2
            sent = hook.calls[-1].request
            expected = "sha256=" + hmac.new(b"hook-secret", sent.content, hashlib.sha256).hexdigest()
            assert sent.headers["X-Warden-Signature"] == expected
            payload = json.loads(sent.content)
            # the rooms that had missed their SLA when it was called: room-0's deadline job also served
            # the other rooms' deadlines, due in the same second (a deadline burst is served in batches)
            assert payload["agent_name"] == AGENT and ROOMS[0] in payload["rooms"]
            assert set(payload["rooms"]) <= set(ROOMS)
            incident = await get_incident(h.engine, payload["incident_id"])
            assert incident is not None and incident.restarted_at is not None
            assert ("deploy hook", "deploy hook answered HTTP 200 (attempt 2)") in [
                (a, o) for _, a, o, _ in incident.actions
            ]


async def test_agents_still_missing_after_the_restart_alert_loudly_once_instead_of_looping(
    redis_url: str, database_url: str, alerts: respx.Route
) -> None:
    async with harness(
        redis_url,
        database_url,
        **CLOUD,
        warden_cloud_agent_id="CA_x",
        warden_outage_rooms=1,
        warden_escalation="restart,rollback",
    ) as h:
        h.fake.cloud_agents = {"CA_x": AGENT}
        await everyone_waits(h)  # and no agent ever comes, restart or not
        for _ in range(20):
            h.advance(15)
            await fire_all_due(h, [])
        assert h.fake.restarts == ["CA_x", "rollback:CA_x"]
        texts = [json.loads(call.request.content)["text"] for call in alerts.calls]
        assert sum("still does not come" in t for t in texts) == 1
        for room in ROOMS:
            assert (await h.room(sid(room))).deadline is None  # failed, waiting for a person: no loop


async def test_a_breach_after_an_incident_resolved_does_not_reopen_it_with_old_breaches(
    redis_url: str, database_url: str, alerts: respx.Route
) -> None:
    """Two rooms miss their SLA (an outage of two), recover; a third misses its SLA a little later,
    within the same window: one room is not an outage, so no second incident and no third alert."""
    async with harness(redis_url, database_url, **CLOUD, warden_outage_rooms=2) as h:
        first, second, later = ROOMS[:3]
        for room in (first, second):
            h.fake.join(room, "alice")
            await h.send("participant_joined", room=room, sid=sid(room), participant=person("alice"))
        h.advance(16)
        for room in (first, second):
            await h.run_deadline(sid(room), 1)
        for room in (first, second):
            h.fake.join(room, f"agent-{room}", agent_name=AGENT)
            await h.send(
                "participant_joined", room=room, sid=sid(room), participant=agent(f"agent-{room}", AGENT)
            )
        found, total = await list_incidents(h.engine, limit=10, offset=0)
        assert total == 1 and found[0].resolved_at is not None
        h.fake.join(later, "alice")
        await h.send("participant_joined", room=later, sid=sid(later), participant=person("alice"))
        h.advance(16)
        await h.run_deadline(sid(later), 1)
        assert (await list_incidents(h.engine, limit=10, offset=0))[1] == 1
        texts = [json.loads(call.request.content)["text"] for call in alerts.calls]
        assert [t.split(" ")[0] for t in texts if "resolved" in t or "not coming" in t] == [
            ":rotating_light:",
            ":white_check_mark:",
        ]  # one incident opened and resolved; none opened again


async def test_the_room_whose_failure_brought_the_restart_gets_no_follow_up_in_the_same_breath(
    redis_url: str, database_url: str, alerts: respx.Route
) -> None:
    """The follow-up ("still does not come after the restart") is for a room failing after the
    restart, not for the one whose failure just caused it."""
    async with harness(redis_url, database_url, **CLOUD, warden_cloud_agent_id="CA_x") as h:
        h.fake.cloud_agents = {"CA_x": AGENT}
        await everyone_waits(h)
        h.fake.fail("CreateDispatch", 403)  # LiveKit refuses: the room fails at its first re-dispatch
        h.advance(15)
        await h.run_deadline(sid(ROOMS[0]), 1)
        assert h.fake.restarts == ["CA_x"]
        texts = [json.loads(call.request.content)["text"] for call in alerts.calls]
        assert len(texts) == 1 and "is not coming" in texts[0], texts

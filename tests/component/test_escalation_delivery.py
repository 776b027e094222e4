"""Escalation's side effects that must survive crashes, in-process: a restart claimed by a worker that
died is taken up again after its lease and done once; alerts and the deploy hook are tried until they
land (5xx, with backoff, through the sweep), not after a 4xx, and given up after
WARDEN_ALERT_RETRY_SECONDS; every attempt is in the incident's log. Warden's own HTTP is on respx, the
Cloud agent API is the stand-in LiveKit's."""

from __future__ import annotations

import json

import httpx
import respx
from sqlalchemy import select

from tests.support.harness import AGENT, Harness, harness
from tests.support.helpers import person
from workers.core.incident import CLOUD, IncidentState, Report, Restart, Signal
from workers.escalation.agents import Incidents
from workers.jobs.rooms.crons import sweep
from workers.jobs.runtime.context import context
from workers.store.incidents import Incident, get_incident, list_incidents
from workers.store.models import OUTBOX

ALERTS = "https://hooks.example.test/alerts"
HOOK = "https://deploy.example.test/hook"
ROOM, SID = "room-1", "RM_room-1"
ONE_ROOM_OUTAGE: dict[str, object] = {
    "escalation": True,
    "warden_outage_rooms": 1,
    "warden_escalation_backoff_seconds": 0.01,
    "warden_alert_webhook_url": ALERTS,
}


async def outage(h: Harness) -> Incident:
    """A person waits, the agent never comes: the join SLA passes and the room's breach opens an incident."""
    h.fake.join(ROOM, "alice")
    await h.send("participant_joined", room=ROOM, sid=SID, participant=person("alice"))
    h.advance(15)
    await h.run_deadline(SID, 1)
    return await the_incident(h)


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
    """Ids of the alerts and deploy hooks still to be delivered."""
    async with h.engine.connect() as connection:
        return list(await connection.scalars(select(OUTBOX.c.id).where(OUTBOX.c.room_sid.is_(None))))


def log_of(incident: Incident, action: str) -> list[str]:
    return [outcome for _, a, outcome, _ in incident.actions if a == action]


async def test_a_restart_claimed_by_a_worker_that_died_is_taken_up_after_the_lease_and_done_once(
    redis_url: str, database_url: str
) -> None:
    async with (
        harness(
            redis_url,
            database_url,
            **ONE_ROOM_OUTAGE,
            lk_agents_url="{livekit}",
            warden_cloud_agent_id="CA_x",
        ) as h,
        respx.mock(assert_all_mocked=True) as mock,
    ):
        mock.post(ALERTS).mock(return_value=httpx.Response(200))
        h.fake.cloud_agents = {"CA_x": AGENT}
        # Another worker opened the incident and claimed its restart, then died before calling it.
        incidents = context(h.ctx).effects.incidents
        assert isinstance(incidents, Incidents)
        report = Report(Signal.OUTAGE, h.clock.now, reason="outage", rooms=1)
        claimed = await incidents.for_agent(AGENT).decide(report, [(SID, ROOM)])
        assert claimed is not None and Restart((CLOUD,)) in claimed.decisions  # decided, never carried out
        dead = claimed.incident.id
        incident = await outage(h)
        assert incident.id == dead and h.fake.restarts == []  # the claim is held: no second restart
        await sweep_later(h, 30)
        assert h.fake.restarts == []  # still within the lease
        await sweep_later(h, 40)
        assert h.fake.restarts == ["CA_x"]  # the lease ran out with no outcome: taken up again
        for _ in range(3):  # done: never repeated, by the sweep nor by the next breaches
            await sweep_later(h, 70)
        deadline = (await h.room(SID)).deadline
        assert deadline is not None
        h.clock.now = max(h.clock.now, deadline.at)
        await h.run_deadline(SID, deadline.attempt)  # the room misses its SLA again: a breach
        assert h.fake.restarts == ["CA_x"]
        incident = await the_incident(h)
        assert incident.restarted_at is not None and incident.state is IncidentState.RESTARTED


async def test_a_restart_that_keeps_failing_with_5xx_is_tried_again_each_lease_until_it_lands(
    redis_url: str, database_url: str
) -> None:
    async with (
        harness(
            redis_url,
            database_url,
            **ONE_ROOM_OUTAGE,
            lk_agents_url="{livekit}",
            warden_cloud_agent_id="CA_x",
        ) as h,
        respx.mock(assert_all_mocked=True) as mock,
    ):
        mock.post(ALERTS).mock(return_value=httpx.Response(200))
        h.fake.cloud_agents = {"CA_x": AGENT}
        h.fake.fail("RestartAgent", 503, times=3)  # one job's tries
        await outage(h)
        assert h.fake.restarts == []
        await sweep_later(h, 61)
        assert h.fake.restarts == ["CA_x"]
        await sweep_later(h, 61)
        assert h.fake.restarts == ["CA_x"]
        restarts = log_of(await the_incident(h), "LiveKit Cloud agent restart")
        assert restarts[0].startswith("failed: ") and restarts[0].endswith("tried again in 60 s")
        assert restarts[1] == "restarted CA_x: restarting"


async def test_an_alert_answered_503_twice_then_200_is_delivered_once_each_attempt_in_the_log(
    redis_url: str, database_url: str
) -> None:
    async with harness(redis_url, database_url, **ONE_ROOM_OUTAGE) as h, respx.mock() as mock:
        alerts = mock.post(ALERTS).mock(
            side_effect=[httpx.Response(503), httpx.Response(503), httpx.Response(200)]
        )
        await outage(h)
        assert alerts.call_count == 1
        await sweep_later(h)
        assert alerts.call_count == 2
        await sweep_later(h)
        assert alerts.call_count == 3
        for _ in range(3):
            await sweep_later(h, 30)
        assert alerts.call_count == 3 and await outgoing_rows(h) == []
        texts = {json.loads(call.request.content)["text"] for call in alerts.calls}
        assert len(texts) == 1 and texts.pop().startswith(":rotating_light:")
        assert log_of(await the_incident(h), "alert opened") == [
            "failed (attempt 1): alert webhook answered HTTP 503; tried again later",
            "failed (attempt 2): alert webhook answered HTTP 503; tried again later",
            "alert webhook answered HTTP 200 (attempt 3)",
        ]


async def test_an_alert_refused_with_4xx_is_tried_once_and_recorded(
    redis_url: str, database_url: str
) -> None:
    async with harness(redis_url, database_url, **ONE_ROOM_OUTAGE) as h, respx.mock() as mock:
        alerts = mock.post(ALERTS).mock(return_value=httpx.Response(404))
        await outage(h)
        for _ in range(3):
            await sweep_later(h, 30)
        assert alerts.call_count == 1 and await outgoing_rows(h) == []
        assert log_of(await the_incident(h), "alert opened") == [
            "refused for good (attempt 1): alert webhook answered HTTP 404"
        ]


async def test_an_alert_outlives_the_worker_that_decided_it(redis_url: str, database_url: str) -> None:
    with respx.mock() as mock:
        alerts = mock.post(ALERTS).mock(side_effect=[httpx.ConnectError("down"), httpx.Response(200)])
        async with harness(redis_url, database_url, **ONE_ROOM_OUTAGE) as h:
            incident = await outage(h)
        assert alerts.call_count == 1  # that worker is gone; the row is not
        async with harness(redis_url, database_url, **ONE_ROOM_OUTAGE) as later:
            later.clock.now = h.clock.now
            await sweep_later(later)
            assert alerts.call_count == 2
            assert log_of(await the_incident(later), "alert opened") == [
                "failed (attempt 1): alert webhook unreachable: ConnectError; tried again later",
                "alert webhook answered HTTP 200 (attempt 2)",
            ]
            assert (await the_incident(later)).id == incident.id


async def test_an_alert_is_given_up_after_the_retry_time(redis_url: str, database_url: str) -> None:
    async with (
        harness(redis_url, database_url, **ONE_ROOM_OUTAGE, warden_alert_retry_seconds=20) as h,
        respx.mock() as mock,
    ):
        alerts = mock.post(ALERTS).mock(return_value=httpx.Response(502))
        await outage(h)
        for _ in range(6):
            await sweep_later(h, 10)
        assert alerts.call_count == 3  # at once, 10 s and 20 s after it was decided: then given up
        assert await outgoing_rows(h) == []
        assert log_of(await the_incident(h), "alert opened")[-1] == (
            "gave up (attempt 3, 20 s after it was decided): alert webhook answered HTTP 502"
        )


async def test_a_deploy_hook_given_up_ends_the_restart_step_and_says_so(
    redis_url: str, database_url: str
) -> None:
    async with (
        harness(
            redis_url,
            database_url,
            **ONE_ROOM_OUTAGE,
            warden_deploy_hook_url=HOOK,
            warden_alert_retry_seconds=15,
        ) as h,
        respx.mock() as mock,
    ):
        hook = mock.post(HOOK).mock(return_value=httpx.Response(503))
        alerts = mock.post(ALERTS).mock(return_value=httpx.Response(200))
        await outage(h)
        for _ in range(4):
            await sweep_later(h, 10)
        assert hook.call_count == 3
        incident = await the_incident(h)
        assert incident.state is IncidentState.NOT_RESTARTED and incident.restarted_at is None
        assert log_of(incident, "deploy hook")[-1].startswith("gave up (attempt 3")
        texts = [json.loads(call.request.content)["text"] for call in alerts.calls]
        assert sum("the restart failed" in t for t in texts) == 1

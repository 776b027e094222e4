"""The outbox in-process: a room that fails while Redis is unreachable is still escalated (the Cloud
agent restarted, people told) once Redis is back, by the sweep's delivery of what the job could not
queue; and delivered only once."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import respx

from service.dev.embedded_redis import EmbeddedRedis
from tests.support.harness import harness
from tests.support.helpers import person
from workers.jobs.context import context
from workers.jobs.crons import sweep
from workers.jobs.rooms import on_deadline
from workers.store import outbox
from workers.store.incidents import list_incidents

ALERTS = "https://hooks.example.test/alerts"
ROOM, SID = "call-7", "RM_7"


@pytest.fixture
def alerts() -> Iterator[respx.Route]:
    with respx.mock(assert_all_mocked=True) as mock:
        yield mock.post(ALERTS).mock(return_value=httpx.Response(200, text="ok"))


async def test_a_room_failing_while_redis_is_down_is_escalated_once_redis_is_back(
    tmp_path: Path, database_url: str, alerts: respx.Route
) -> None:
    server = EmbeddedRedis(tmp_path / "redis", persist=True)  # production Redis keeps an append-only file
    server.start()
    try:
        async with harness(
            server.url,
            database_url,
            escalation=True,
            lk_agents_url="{livekit}",
            warden_cloud_agent_id="CA_x",
            warden_alert_webhook_url=ALERTS,
            warden_escalation_backoff_seconds=0.01,
        ) as h:
            h.fake.cloud_agents = {"CA_x": "notetaker"}
            h.fake.join(ROOM, "alice")
            await h.send("participant_joined", room=ROOM, sid=SID, participant=person("alice"))
            h.fake.fail("CreateDispatch", 403)  # LiveKit refuses the re-dispatch: the room fails
            deadline = (await h.room(SID)).deadline
            assert deadline is not None
            h.clock.now = deadline.at
            await h.queue.delete(f"arq:job:deadline:{SID}:{deadline.attempt}")

            server.stop()
            assert await on_deadline(h.ctx, SID, deadline.attempt) == "failed"
            server.start()  # same port, same append-only file

            assert h.fake.restarts == [] and not alerts.called
            worker = context(h.ctx)
            await worker.delivered.flush()
            left = await outbox.pending_count(h.engine)
            assert left == 2  # the breach and the failed room, kept for the sweep
            h.advance(outbox.GRACE_SECONDS + 1)
            await sweep(h.ctx)
            await h.run_escalations()
            await worker.delivered.flush()

            assert h.fake.restarts == ["CA_x"]
            found, total = await list_incidents(h.engine, limit=10, offset=0)
            assert total == 1 and [sid for sid, *_ in found[0].rooms] == [SID]
            assert len([t for t in texts(alerts) if t.startswith(":rotating_light:")]) == 1
            assert await outbox.pending_count(h.engine) == 0
            told = texts(alerts)

            h.advance(outbox.LEASE_SECONDS + 1)  # later sweeps deliver nothing again
            await sweep(h.ctx)
            await h.run_escalations()
            assert h.fake.restarts == ["CA_x"] and texts(alerts) == told
    finally:
        server.stop()


def texts(alerts: respx.Route) -> list[str]:
    return [json.loads(call.request.content)["text"] for call in alerts.calls]

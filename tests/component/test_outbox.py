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
from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from devtools.embedded_redis import EmbeddedRedis
from tests.support.harness import harness
from tests.support.helpers import person
from workers.jobs.delivery.outbox import deliver_overdue
from workers.jobs.rooms.crons import sweep
from workers.jobs.rooms.jobs import on_deadline
from workers.jobs.runtime.context import context
from workers.store import outbox
from workers.store.incidents import list_incidents
from workers.store.models import EVENTS, OUTBOX

ALERTS = "https://hooks.example.test/alerts"
ROOM, SID = "call-7", "RM_7"


async def left_in_outbox(engine: AsyncEngine) -> int:
    async with engine.connect() as connection:
        return len(list(await connection.scalars(select(OUTBOX.c.id))))


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
            left = await left_in_outbox(h.engine)
            assert left == 2  # the breach and the failed room, kept for the sweep
            h.advance(outbox.GRACE_SECONDS + 1)
            await sweep(h.ctx)
            await h.run_escalations()
            await worker.delivered.flush()

            assert h.fake.restarts == ["CA_x"]
            found, total = await list_incidents(h.engine, limit=10, offset=0)
            assert total == 1 and [sid for sid, *_ in found[0].rooms] == [SID]
            assert len([t for t in texts(alerts) if t.startswith(":rotating_light:")]) == 1
            assert await left_in_outbox(h.engine) == 0
            told = texts(alerts)

            h.advance(outbox.LEASE_SECONDS + 1)  # later sweeps deliver nothing again
            await sweep(h.ctx)
            await h.run_escalations()
            assert h.fake.restarts == ["CA_x"] and texts(alerts) == told
    finally:
        server.stop()


def texts(alerts: respx.Route) -> list[str]:
    return [json.loads(call.request.content)["text"] for call in alerts.calls]


async def test_an_unreadable_row_does_not_hold_up_the_rest_of_the_outbox(
    redis_url: str, database_url: str
) -> None:
    """A row no version of Warden can read (a bug, a downgrade) is left where it is, logged; the sweep
    goes on delivering every other row."""
    async with harness(redis_url, database_url) as h:
        h.fake.join(ROOM, "alice")
        await h.send("participant_joined", room=ROOM, sid=SID, participant=person("alice"))
        worker = context(h.ctx)
        await worker.delivered.flush()  # the join's own deadline, delivered: out of the outbox
        at = h.clock.now
        rows = [
            {"id": f"{name}#0", "room_sid": SID, "kind": kind, "payload": payload, "created_at": at,
             "due_at": at, "attempts": 0}
            for name, kind, payload in [
                ("bad", "Unheard", {"action": "Unheard"}),
                ("good", "ScheduleDeadline",
                 {"action": "ScheduleDeadline", "attempt": 9, "at": at, "reason": "join"}),
            ]
        ]  # fmt: skip
        async with h.engine.begin() as connection:
            await outbox.write(connection, rows)
        h.advance(outbox.GRACE_SECONDS + 1)
        assert await deliver_overdue(worker.effects, h.engine, worker.delivered) == 1
        await worker.delivered.flush()
        assert f"deadline:{SID}:9" in await h.timers()
        async with h.engine.connect() as connection:
            left = list(await connection.scalars(select(OUTBOX.c.id)))
        assert "bad#0" in left and "good#0" not in left


async def test_a_decision_withheld_in_observe_mode_says_so_in_the_rooms_log(engine: AsyncEngine) -> None:
    # On PostgreSQL as on SQLite: act mode's decision left in the outbox and made nothing of by observe
    # mode's gate reads carried_out false, and why; observe mode's own decision is left as it was.
    told = {"type": "SendStatus", "agent": "notetaker", "carried_out": True}
    mine = {**told, "carried_out": False}
    row = {"room_sid": SID, "kind": "action", "name": "SendStatus", "created_at": 1.0, "received_at": 1.0}
    async with engine.begin() as connection:
        await connection.execute(
            insert(EVENTS),
            [{**row, "event_id": "act#0", "data": told}, {**row, "event_id": "obs#0", "data": mine}],
        )
    await outbox.withheld(engine, ["act#0", "obs#0"])
    async with engine.connect() as connection:
        found = dict(list(await connection.execute(select(EVENTS.c.event_id, EVENTS.c.data))))
    assert found["act#0"] == {**told, "carried_out": False, "withheld": outbox.WITHHELD}
    assert found["obs#0"] == mine

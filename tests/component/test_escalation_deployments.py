"""A restart belongs to a deployment, in-process: two agents that one LiveKit Cloud agent runs (one
`cloud_agent_id` in the rules), both out at once, are two incidents and one `RestartAgent`; after it
each incident's rooms get their agent back, and each incident resolves. Against the stand-in LiveKit
(which serves the CloudAgent API too), alerts on respx."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import respx
from arq.constants import job_key_prefix

from tests.support.harness import Harness, harness
from tests.support.helpers import agent, person
from workers.core.incident import IncidentState
from workers.jobs.rooms.crons import sweep
from workers.jobs.runtime.context import context
from workers.store.incidents import get_incident, list_incidents
from workers.store.writer import load_room

ALERTS = "https://hooks.example.test/alerts"
AGENTS = ("notetaker", "scribe")
ROOMS = [f"shared-{i}" for i in range(3)]
RULES = """
[[rule]]
match = { room = "shared-*" }
agents = ["notetaker", "scribe"]
cloud_agent_id = "CA_shared"
"""


@pytest.fixture
def alerts() -> AsyncIterator[respx.Route]:
    with respx.mock(assert_all_mocked=True) as mock:
        yield mock.post(ALERTS).mock(return_value=httpx.Response(200, text="ok"))


def sid(room: str) -> str:
    return f"RM_{room}"


async def run_due_timers(h: Harness, joins: list[tuple[str, str]]) -> None:
    """Every deadline job whose view's deadline is due by the harness's clock (whatever the real clock
    says: the queue defers by it), as a worker would run it; the agents dispatched meanwhile join."""
    queue_name = context(h.ctx).settings.warden_queue_name
    for member in await h.queue.zrange(queue_name, 0, -1):
        job_id = member.decode()
        if not job_id.startswith("deadline:"):
            continue
        _, room_sid, attempt = job_id.rsplit(":", 2)
        room = await load_room(h.engine, room_sid)
        view = room.for_attempt(int(attempt)) if room is not None else None
        if view is not None and view.deadline is not None and view.deadline.at <= h.clock.now:
            await h.queue.zrem(queue_name, job_id)
            await h.queue.delete(job_key_prefix + job_id)
            await h.run_deadline(room_sid, int(attempt))
        while joins:
            name_of_room, name = joins.pop(0)
            identity = f"{name}-{name_of_room}"
            h.fake.join(name_of_room, identity, agent_name=name)
            joined = agent(identity, name)
            await h.send("participant_joined", room=name_of_room, sid=sid(name_of_room), participant=joined)


async def test_two_agents_of_one_cloud_deployment_out_at_once_get_one_restart_and_both_come_back(
    redis_url: str, database_url: str, tmp_path: Path, alerts: respx.Route
) -> None:
    (tmp_path / "rules.toml").write_text(RULES)
    async with harness(
        redis_url,
        database_url,
        escalation=True,
        warden_agent_name="",
        warden_rules=str(tmp_path / "rules.toml"),
        lk_agents_url="{livekit}",
        warden_alert_webhook_url=ALERTS,
        warden_outage_rooms=1,
        warden_escalation_backoff_seconds=0.01,
    ) as h:
        h.fake.cloud_agents = {"CA_shared": "notetaker"}
        awake = {"yes": False}
        joins: list[tuple[str, str]] = []
        h.fake.on_restart = lambda _agent_id: awake.update(yes=True)
        h.fake.on_dispatch = lambda d: joins.append((d.room, d.agent_name)) if awake["yes"] else None
        for room in ROOMS:  # both agents' workers are down: people wait for two agents in each room
            h.fake.join(room, "alice")
            await h.send("participant_joined", room=room, sid=sid(room), participant=person("alice"))
        for _ in range(12):  # SLA, re-dispatch, restart grace, confirm: walk the clock until all is done
            h.advance(10)
            await run_due_timers(h, joins)
            await sweep(h.ctx)
        assert h.fake.restarts == ["CA_shared"]  # one deployment: one restart, however many agents
        found, total = await list_incidents(h.engine, limit=10, offset=0)
        assert total == 2 and sorted(i.agent_name for i in found) == sorted(AGENTS)
        for summary in found:
            incident = await get_incident(h.engine, summary.id)
            assert incident is not None and incident.state is IncidentState.RESOLVED, incident
            assert incident.restarted_at is not None and incident.waiting_rooms == 0
        for room in ROOMS:  # each agent back in each room, dispatched once after the restart
            for name in AGENTS:
                assert len(h.fake.live_dispatches(room, name)) == 1, (room, name)

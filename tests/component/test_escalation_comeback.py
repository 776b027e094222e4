"""Back as soon as the agent is back: after `RestartAgent`, Warden polls the Cloud agent's deployment
(`ListAgents`) and re-checks the waiting rooms the moment it reports running replicas, instead of
waiting `WARDEN_RESTART_GRACE_SECONDS`; a deploy hook, which says nothing of when workers are up,
still waits the grace. In-process against the stand-in LiveKit (its deployment comes back a moment
after the restart), alerts on respx."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
import respx

from tests.support.harness import AGENT, Harness, harness
from tests.support.helpers import agent, person
from workers.core.room import Phase
from workers.store.incidents import list_incidents

ALERTS = "https://hooks.example.test/alerts"
HOOK = "https://deploy.example.test/hook"
ROOMS = [f"room-{i}" for i in range(6)]
GRACE = 20.0


def sid(room: str) -> str:
    return f"RM_{room}"


@pytest.fixture
def outgoing() -> AsyncIterator[respx.MockRouter]:
    with respx.mock(assert_all_mocked=True, assert_all_called=False) as mock:
        mock.post(ALERTS).mock(return_value=httpx.Response(200, text="ok"))
        mock.post(HOOK).mock(return_value=httpx.Response(200, text="ok"))
        yield mock


async def outage(h: Harness) -> list[str]:
    """Everyone waits, the agent never comes until a restart; every room misses its SLA (the third
    breach restarts the agent). Returns the list the rooms answered after the restart go to."""
    answered: list[str] = []
    restarted = {"yes": False}
    h.fake.on_restart = lambda _agent_id: restarted.update(yes=True)
    h.fake.on_dispatch = lambda d: answered.append(d.room) if restarted["yes"] else None
    for room in ROOMS:
        h.fake.join(room, "alice")
        await h.send("participant_joined", room=room, sid=sid(room), participant=person("alice"))
    h.advance(15)  # the join SLA
    for room in ROOMS:
        current = await h.room(sid(room))
        if current.deadline is not None and current.deadline.at <= h.clock.now:
            await h.run_deadline(sid(room), current.deadline.attempt)
    return answered


async def run_due(h: Harness, answered: list[str]) -> None:
    """Every room's deadline due by now, the agents joining the rooms they were dispatched to."""
    for room in ROOMS:
        current = await h.room(sid(room))
        if current.deadline is not None and current.deadline.at <= h.clock.now:
            await h.run_deadline(sid(room), current.deadline.attempt)
        while answered:
            got = answered.pop(0)
            h.fake.join(got, f"agent-{got}", agent_name=AGENT)
            joined = agent(f"agent-{got}", AGENT)
            await h.send("participant_joined", room=got, sid=sid(got), participant=joined)


async def test_rooms_are_re_dispatched_as_soon_as_the_cloud_deployment_reports_running_replicas(
    redis_url: str, database_url: str, outgoing: respx.MockRouter
) -> None:
    async with harness(
        redis_url,
        database_url,
        escalation=True,
        lk_agents_url="{livekit}",
        warden_cloud_agent_id="CA_x",
        warden_alert_webhook_url=ALERTS,
        warden_restart_grace_seconds=GRACE,
    ) as h:
        h.fake.cloud_agents = {"CA_x": AGENT}
        h.fake.restart_takes = {"CA_x": 0.3}  # "Sleeping", no replicas, then "Running" 0.3 s after
        h.fake.restart_asleep_polls = {"CA_x": 1}  # and seen asleep first, however late the first poll
        answered = await outage(h)
        assert h.fake.restarts == ["CA_x"]
        restarted_at = h.clock.now
        polls = [c for c in h.fake.calls if c[0] == "ListAgents"]
        assert len(polls) >= 2  # one saw it asleep, a later one running
        waiting = [room for room in ROOMS if room not in answered]  # dispatched before the restart
        assert waiting
        for room in waiting:  # re-checked at once (in bulk: LiveKit asked), not at the end of the grace
            deadline = (await h.room(sid(room))).deadline  # its young dispatch given its seconds
            assert deadline is not None and deadline.at < restarted_at + GRACE / 2, room
        # The rooms' last dispatches were made a moment before the restart: Warden gives a dispatch that
        # young its time before it counts as unanswered (LiveKit may be assigning it). A few seconds of
        # the deployment's boot, far from the restart's grace, and they are re-dispatched and answered.
        h.advance(GRACE / 2)
        await run_due(h, answered)
        for room in ROOMS:
            assert (await h.room(sid(room))).phase is Phase.AGENT_PRESENT, room
        found, _ = await list_incidents(h.engine, limit=10, offset=0)
        notes = [o for _, a, o, _ in found[0].actions if a == "re-dispatch"]
        assert notes[-1].startswith(f"{len(ROOMS)} waiting room(s) re-checked at once, its deployment")


async def test_a_deployment_that_never_reported_down_is_left_to_the_grace(
    redis_url: str, database_url: str, outgoing: respx.MockRouter
) -> None:
    """Running replicas from the first poll on may be a status from before the restart: the grace
    decides, as when LiveKit lists no deployment at all."""
    async with harness(
        redis_url,
        database_url,
        escalation=True,
        lk_agents_url="{livekit}",
        warden_cloud_agent_id="CA_x",
        warden_alert_webhook_url=ALERTS,
        warden_restart_grace_seconds=2.5,  # real seconds of polling in this test, and the grace
    ) as h:
        h.fake.cloud_agents = {"CA_x": AGENT}
        h.fake.restart_takes = {"CA_x": 0.0}
        await outage(h)
        assert h.fake.restarts == ["CA_x"]
        assert len([c for c in h.fake.calls if c[0] == "ListAgents"]) >= 2
        for room in ROOMS:
            current = await h.room(sid(room))
            assert current.deadline is not None and current.deadline.at == h.clock.now + 2.5, room


async def test_a_deploy_hook_still_waits_the_grace(
    redis_url: str, database_url: str, outgoing: respx.MockRouter
) -> None:
    async with harness(
        redis_url,
        database_url,
        escalation=True,
        warden_deploy_hook_url=HOOK,
        warden_deploy_hook_secret="hook-secret",
        warden_alert_webhook_url=ALERTS,
        warden_restart_grace_seconds=GRACE,
    ) as h:
        await outage(h)
        assert outgoing.routes[1].call_count == 1  # the deploy hook, once
        restarted_at = h.clock.now
        dispatched = len(h.fake.created)
        await run_due(h, [])
        assert len(h.fake.created) == dispatched  # nothing due before the grace
        for room in ROOMS:
            current = await h.room(sid(room))
            assert current.deadline is not None and current.deadline.at == restarted_at + GRACE, room
        h.advance(GRACE)
        await run_due(h, [])
        assert {r for r, _ in h.fake.created[dispatched:]} == set(ROOMS)

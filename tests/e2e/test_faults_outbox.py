"""The outbox with real processes: the worker SIGKILLed right after a room's commit, before the notices
that commit decided are delivered (the worker's test hook `WARDEN_FAULT_AT`, see
workers/jobs/runtime/faults.py), or in the middle of a batch (recovery in bulk, a burst of deadlines),
then a fresh worker started without the hook. What was decided still happens, once."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from devtools.simulator.livekit import FakeLiveKit
from tests.support.settings import KEY, SECRET
from tests.support.waiting import wait_until
from tests.support.world import AGENT, World, settled, warden_world
from workers.jobs.runtime.faults import MID_BATCH, VARIABLE

SLA = {"WARDEN_JOIN_SLA_SECONDS": "1.5", "WARDEN_SWEEP_SECONDS": "1"}
CLOUD_AGENT = "CA_outbox"
# Recovery in bulk: a batch's holds run out within 6 LiveKit timeouts and 5 s (`workers.jobs.rooms.bulk`)
BULK = {"WARDEN_LIVEKIT_TIMEOUT_SECONDS": "1", "WARDEN_OUTAGE_ROOMS": "3"}
BULK_ROOMS = [f"o-bulk-{i}" for i in range(5)]
# A burst of deadlines (`workers.jobs.rooms.burst`): the worker runs four jobs at once, so that most of the
# burst's deadline jobs wait in the queue for the batch to take them; no outage is declared
BURST = "burst"
BURST_ENV = {
    "WARDEN_LIVEKIT_TIMEOUT_SECONDS": "1",
    "WARDEN_WORKER_CONCURRENCY": "4",
    "WARDEN_OUTAGE_ROOMS": "100",
}
BURST_ROOMS = [f"o-burst-{i}" for i in range(10)]


@pytest.fixture
async def world(tmp_path: Path, redis_url: str, request: pytest.FixtureRequest) -> AsyncIterator[World]:
    """Warden whose first worker dies after the first commit deciding a notice of the kind `param`."""
    fake = FakeLiveKit(KEY, SECRET, cloud_agents={CLOUD_AGENT: AGENT})
    env = {
        "LK_AGENTS_URL": "{livekit}",
        "WARDEN_CLOUD_AGENT_ID": CLOUD_AGENT,
        VARIABLE: f"{point(request.param)}:{tmp_path / 'fault-fired'}",
        **SLA,
        **(BULK if request.param == MID_BATCH else BURST_ENV if request.param == BURST else {}),
    }
    async with warden_world(tmp_path, redis_url, fake, **env) as w:
        yield w


def point(param: str) -> str:
    return MID_BATCH if param in (MID_BATCH, BURST) else f"after_commit.{param}"


async def killed_by_the_hook(w: World, **env: str) -> None:
    """Wait for the first worker to die by its hook, then start a fresh one without it (and with `env`)."""
    (worker, _), *_ = w.warden.running["worker"]

    async def dead() -> bool:
        return worker.poll() is not None

    await wait_until(dead, "the worker killed right after the commit")
    assert worker.returncode == -9, w.warden.log_text()[-3000:]
    del w.warden.env[VARIABLE]
    w.warden.env.update(env)
    w.warden.start("worker")


@pytest.mark.parametrize("world", ["ScheduleDeadline"], indirect=True)
async def test_killed_before_the_deadline_was_queued_the_room_is_redispatched_once(world: World) -> None:
    world.arrive_on = {"o-deadline": 1}
    await world.person_joins("o-deadline")  # decides the join deadline; the worker dies at its commit
    await killed_by_the_hook(world)
    assert world.fake.created == []
    room = await world.room("o-deadline")
    assert room["recovery"]["deadline"] is not None  # committed before the kill

    async def served() -> bool:
        return settled("agent_active")(await world.room("o-deadline"))

    await wait_until(served, "the agent, dispatched by the fresh worker")
    assert world.created("o-deadline") == 1
    assert len(world.fake.live_dispatches("o-deadline", AGENT)) == 1


@pytest.mark.parametrize("world", ["ReportFailed"], indirect=True)
async def test_killed_before_the_escalation_was_queued_the_agent_is_still_restarted_once(
    world: World,
) -> None:
    world.fake.fail("CreateDispatch", 403)  # LiveKit refuses the re-dispatch: the room fails, escalated
    await world.person_joins("o-escalate")
    await killed_by_the_hook(world)
    assert world.fake.restarts == []
    assert (await world.room("o-escalate"))["recovery"]["state"] == "failed"  # committed before the kill

    async def restarted() -> bool:
        return bool(world.fake.restarts)

    await wait_until(restarted, "the Cloud agent restarted by the fresh worker")
    incidents = f"{world.warden.url}/api/incidents"

    async def fresh_started() -> bool:  # the restart's last step: waiting rooms re-checked
        listed = (await world.client.get(incidents)).json()["incidents"]
        detail = (await world.client.get(f"{incidents}/{listed[0]['id']}")).json() if listed else {}
        return "re-dispatch" in [a["action"] for a in detail.get("actions", [])]

    await wait_until(fresh_started, "the restart carried through")
    assert (await world.client.get(incidents)).json()["total"] == 1
    assert world.fake.restarts == [CLOUD_AGENT]


@pytest.mark.parametrize("world", [MID_BATCH], indirect=True)
async def test_killed_in_the_middle_of_a_recovery_in_bulk_every_room_is_recovered_once(world: World) -> None:
    """An outage of five rooms; the deployment runs again 7 s after its restart; the worker dies in the
    batch that re-dispatches them, right after a re-dispatch landed (the batch's others may have too),
    before any is recorded. The fresh worker recovers every room, each with one dispatch after the
    deployment's return, never two live."""
    world.fake.restart_takes[CLOUD_AGENT] = 7.0  # longer than a dispatch is given to be listed
    after_back: list[str] = []

    def on_dispatch(dispatch: Any) -> None:  # an agent answers only once its deployment runs again
        if time.time() >= world.fake.back_at.get(CLOUD_AGENT, math.inf):
            after_back.append(dispatch.room)
            count = world.created(dispatch.room)
            joins = world.agent_joins(dispatch.room, f"agent-{count}", dispatch_id=dispatch.id)
            task = asyncio.get_running_loop().create_task(joins)
            world.tasks.add(task)
            task.add_done_callback(world.tasks.discard)

    world.fake.on_dispatch = on_dispatch
    for room in BULK_ROOMS:
        await world.person_joins(room)
    await killed_by_the_hook(world)
    assert world.fake.restarts == [CLOUD_AGENT] and after_back  # landed, not recorded: then the kill

    async def served() -> bool:
        return all([settled("agent_active")(await world.room(room)) for room in BULK_ROOMS])

    await wait_until(served, "every room's agent, the fresh worker finishing the batch's work", timeout=60)
    assert sorted(after_back) == sorted(BULK_ROOMS)  # each room once since the deployment's return
    assert all(len(world.fake.live_dispatches(room, AGENT)) == 1 for room in BULK_ROOMS)


@pytest.mark.parametrize("world", [BURST], indirect=True)
async def test_killed_in_the_middle_of_a_deadline_burst_every_room_is_recovered_once(world: World) -> None:
    """Ten rooms whose SLAs end together; the worker dies in the batch serving the deadline jobs its first
    job took out of the queue, right after a re-dispatch landed, before it is recorded. The fresh worker
    recovers every room (once the dead batch's holds ran out: the sweep queues their deadlines again),
    each with the one dispatch its agent answers, never two live."""
    world.arrive_on = dict.fromkeys(BURST_ROOMS, 1)  # each room's agent answers Warden's first dispatch
    for room in BURST_ROOMS:
        await world.person_joins(room)
    # The fresh worker runs more jobs at once: the dead one's jobs (its incident reports' claims last their
    # 300-s timeout) stay at the head of the queue, and a worker whose every slot they take runs nothing
    await killed_by_the_hook(world, WARDEN_WORKER_CONCURRENCY="50")
    assert world.fake.restarts == [] and world.fake.created  # landed, not recorded: then the kill

    async def served() -> bool:
        return all([settled("agent_active")(await world.room(room)) for room in BURST_ROOMS])

    # (the dead worker's own deadline jobs run again once ARQ's claim on them ends: 30 s and 10 s)
    await wait_until(served, "every room's agent, the fresh worker finishing the batch's work", timeout=90)
    assert all(world.created(room) == 1 for room in BURST_ROOMS)  # the batch's dispatch not made twice
    assert all(len(world.fake.live_dispatches(room, AGENT)) == 1 for room in BURST_ROOMS)

"""LiveKit's job signals as the people in a room and those on call live them (issue 26): workers that
are full make a capacity alert and no restart, a job LiveKit retries itself is left to it, a cancelled
job is no breach, and the worker that swallowed three jobs is named in the incident. The worker's jobs
and escalation in their in-memory world."""

from __future__ import annotations

from pathlib import Path

from prometheus_client import REGISTRY

from tests.support.jobs_world import AGENT, World, jobs_world
from workers.core.events import JobInfo, JobReason, JobStatus

ROOMS = ["call-1", "call-2", "call-3", "call-4"]


async def waiting(world: World, rooms: list[str]) -> None:
    for room in rooms:
        await world.person_joins(room)
        world.app_dispatch(room)


def refusals() -> float:
    return REGISTRY.get_sample_value("warden_capacity_refusals_total", {"agent": AGENT}) or 0.0


async def test_workers_full_across_four_rooms_make_one_capacity_alert_and_no_restart(world: World) -> None:
    world.full.add(AGENT)
    before = refusals()
    await waiting(world, ROOMS)
    await world.wait(15)
    (incident,) = await world.incidents()
    assert incident.kind == "capacity" and len(incident.rooms) == 4
    assert world.cloud.restarts == [] and world.cloud.rollbacks == []
    assert world.webhook.said() == ["opened"] and [e.kind for e in world.webhook.sent] == ["capacity"]
    (opened,) = world.alerts.sent
    assert "workers for notetaker are full" in opened and "restarts nothing" in opened
    assert refusals() - before == 4
    await world.wait(200)  # re-dispatched with backoff, past WARDEN_MAX_REDISPATCHES, never given up
    assert world.cloud.restarts == [] and world.cloud.rollbacks == [] and len(world.alerts.sent) == 1
    assert all(world.livekit.dispatched.count((room, AGENT)) == 4 for room in ROOMS)
    assert {await world.phase(room) for room in ROOMS} == {"waiting"}
    world.full.discard(AGENT)  # workers free up: the next re-dispatch is accepted
    await world.wait(250)
    assert {await world.phase(room) for room in ROOMS} == {"agent_active"}
    (incident,) = await world.incidents()
    assert incident.resolved_at is not None and world.cloud.restarts == []
    assert "workers for notetaker accept jobs again" in world.alerts.sent[-1]


async def test_a_job_livekit_retries_and_serves_within_the_grace_gets_no_dispatch_from_warden(
    world: World,
) -> None:
    await world.person_joins("call-1")
    world.livekit.app_dispatch("call-1", AGENT)
    world.jobs_say("call-1", JobInfo(JobStatus.PENDING, JobReason.RETRYING))
    await world.wait(20)  # the join deadline passed at 15 s: LiveKit's retry is given until 30 s
    await world.agent_joins("call-1", "agent-AJ_1")
    await world.wait(60)
    assert world.livekit.dispatched == [] and await world.phase("call-1") == "agent_present"
    assert "ReportBreach" not in await world.timeline("call-1")


async def test_a_room_whose_job_was_cancelled_is_no_breach(world: World) -> None:
    await world.person_joins("call-1")
    world.livekit.app_dispatch("call-1", AGENT)
    world.jobs_say("call-1", JobInfo(JobStatus.CANCELLED))
    await world.wait(120)
    assert world.livekit.dispatched == [] and await world.incidents() == []
    assert "ReportBreach" not in await world.timeline("call-1")


async def test_the_worker_that_swallowed_three_jobs_is_named_in_the_incident(tmp_path: Path) -> None:
    async with jobs_world(tmp_path, cloud=False, hook=True) as world:
        world.swallowing[AGENT] = "W_stuck"
        await waiting(world, ROOMS[:3])
        await world.wait(15)
        (incident,) = await world.incidents()
        assert ("worker", "worker W_stuck took 3 jobs and none joined") in [
            (action, outcome) for _, action, outcome, _ in incident.actions
        ]
        assert "Worker W_stuck took 3 jobs and none joined: restart that worker." in world.alerts.sent[0]
        assert world.hook.worker_ids == [("W_stuck",)]  # so that a team can restart that worker alone
        assert world.webhook.said() == ["opened", "restarted"]
        assert {e.worker_ids for e in world.webhook.sent} == {("W_stuck",)}
        assert incident.workers == (("W_stuck", 3),)


async def test_jobs_of_different_workers_name_none(world: World) -> None:
    for n, room in enumerate(ROOMS[:3]):
        world.swallowing[AGENT] = f"W_{n}"
        await world.person_joins(room)
        world.app_dispatch(room)
    await world.wait(15)
    (incident,) = await world.incidents()
    assert incident.workers == () and "worker" not in [action for _, action, _, _ in incident.actions]

"""Escalation, as the people in an outage and those on call live it: when re-dispatching cannot bring the
agent, an incident is opened, the agent's deployment restarted once, people told, the waiting rooms
re-checked after the restart, and the incident resolved when the agent is back. The worker's jobs and
its real escalation in their in-memory world; mirrors `tests/component/test_escalation.py`."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy.exc import OperationalError

from tests.support.jobs_world import AGENT, DEPLOYMENT, JOIN_AFTER, T0, World, jobs_world
from workers.core.room import ReportBreach, action_to_dict
from workers.jobs.rooms import crons
from workers.queue.jobs import queue_incident_report
from workers.store.incidents import OBSERVE_MODE
from workers.store.models import INCIDENT_ACTIONS, INCIDENTS

ROOM = "call-42"
ROOMS = ["call-1", "call-2", "call-3"]
LATER_ROOMS = ["call-4", "call-5", "call-6"]
GRACE = 20.0  # WARDEN_RESTART_GRACE_SECONDS


async def everyone_waits(world: World, rooms: list[str]) -> None:
    for room in rooms:
        await world.person_joins(room)


async def phases(world: World, rooms: list[str]) -> list[str]:
    return [await world.phase(room) for room in rooms]


async def test_a_room_whose_redispatches_run_out_gets_an_incident_one_restart_and_its_agent(
    world: World,
) -> None:
    world.agent_down()
    await world.person_joins(ROOM)
    await world.wait(59.9)  # re-dispatched at 15 s and 30 s; the second is given until 60 s
    assert world.livekit.dispatched == [(ROOM, AGENT)] * 2 and await world.incidents() == []
    await world.wait(0.1)
    (incident,) = await world.incidents()
    assert incident.resolved_at is None and [sid for sid, *_ in incident.rooms] == ["RM_call-42"]
    assert world.cloud.restarts == [DEPLOYMENT]
    assert world.webhook.said() == ["opened", "restarted"]
    assert world.alerts.steps() == [":rotating_light:"]  # people are told it opened, and what Warden does
    assert "LiveKit Cloud agent restart" in world.alerts.sent[0]
    assert (await world.timeline(ROOM))[-2:] == ["agent_restarted", "ScheduleDeadline"]  # a fresh start
    assert world.timers() == [("deadline:RM_call-42:4", GRACE)]  # re-checked once the restart had time
    await world.wait(GRACE + JOIN_AFTER)
    assert len(world.livekit.dispatched) == 3 and await world.phase(ROOM) == "agent_active"
    (incident,) = await world.incidents()
    assert incident.resolved_at == T0 + 60 + GRACE + JOIN_AFTER
    assert world.webhook.said() == ["opened", "restarted", "resolved"]
    assert world.alerts.steps() == [":rotating_light:", ":white_check_mark:"]
    await world.wait(120)
    assert world.cloud.restarts == [DEPLOYMENT] and len(await world.incidents()) == 1


async def test_rooms_missing_their_sla_together_are_one_outage_with_one_restart(world: World) -> None:
    world.agent_down()
    await everyone_waits(world, ROOMS)  # WARDEN_OUTAGE_ROOMS=3 within WARDEN_OUTAGE_WINDOW_SECONDS
    await world.wait(15)
    (incident,) = await world.incidents()
    assert sorted(name for _, name, *_ in incident.rooms) == ROOMS
    assert world.cloud.restarts == [DEPLOYMENT]
    await world.wait(GRACE + JOIN_AFTER)
    assert await phases(world, ROOMS) == ["agent_active"] * 3
    (incident,) = await world.incidents()
    assert incident.resolved_at is not None
    assert world.webhook.said() == ["opened", "restarted", "resolved"]
    assert world.cloud.restarts == [DEPLOYMENT]


async def test_fewer_rooms_than_the_outage_threshold_are_not_yet_an_outage(world: World) -> None:
    world.agent_down()
    await everyone_waits(world, ROOMS[:2])
    await world.wait(30)
    assert await world.incidents() == [] and world.cloud.restarts == [] and world.alerts.sent == []
    assert len(world.livekit.dispatched) == 4  # each room re-dispatched, twice by now


async def test_with_nothing_to_restart_the_incident_is_opened_and_people_told(tmp_path: Path) -> None:
    async with jobs_world(tmp_path, cloud=False, warden_outage_rooms=1) as world:
        world.agent_down()
        await world.person_joins(ROOM)
        await world.wait(15)
        (incident,) = await world.incidents()
        assert incident.resolved_at is None and world.cloud.restarts == [] and world.hook.restarts == []
        assert world.alerts.steps() == [":rotating_light:"]
        assert "nothing to restart" in world.alerts.sent[0]
        assert ("restart", "not attempted: no Cloud agent and no deploy hook configured") in [
            (action, outcome) for _, action, outcome, _ in incident.actions
        ]


async def test_a_deploy_hook_restarts_the_agent_and_the_rooms_get_it_after_the_grace(tmp_path: Path) -> None:
    async with jobs_world(tmp_path, cloud=False, hook=True, warden_outage_rooms=1) as world:
        world.agent_down()
        await world.person_joins(ROOM)
        await world.wait(15)
        (incident,) = await world.incidents()
        assert world.hook.restarts == [(AGENT, incident.id, (ROOM,))]
        await world.wait(GRACE - 0.1)
        assert len(world.livekit.dispatched) == 1  # the deploy hook says nothing of when workers are up
        await world.wait(0.1 + JOIN_AFTER)
        assert len(world.livekit.dispatched) == 2 and await world.phase(ROOM) == "agent_active"
        assert (await world.incidents())[0].resolved_at is not None


@pytest.mark.parametrize("overdue_look_fails", [False, True], ids=["", "overdue-look-failing"])
async def test_a_deploy_hook_that_fails_is_tried_again_by_the_sweep_until_it_lands(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    overdue_look_fails: bool,
) -> None:
    """Also when the sweep's first step (finding overdue deadlines) fails, say its query timed out: that
    is logged and the sweep goes on, the deploy hook still tried again."""

    async def overdue_deadlines(*args: object) -> list[tuple[str, int]]:
        raise OperationalError("SELECT ...", {}, TimeoutError("canceling statement due to statement timeout"))

    async with jobs_world(tmp_path, cloud=False, hook=True, warden_outage_rooms=1) as world:
        world.agent_down()
        world.hook.failures.plan("restart")  # a 5xx
        await world.person_joins(ROOM)
        await world.wait(15)
        assert world.hook.restarts == []
        if overdue_look_fails:
            monkeypatch.setattr(crons, "overdue_deadlines", overdue_deadlines)
        await world.wait(15)
        (incident,) = await world.incidents()
        assert world.hook.restarts == [(AGENT, incident.id, (ROOM,))]
        tries = [outcome for _, action, outcome, _ in incident.actions if action == "deploy hook"]
        assert tries[0].startswith("failed (attempt 1)") and tries[1].endswith("(attempt 2)")
        failed = "queueing overdue deadlines failed: OperationalError"
        assert (failed in caplog.text) == overdue_look_fails


async def test_a_restart_failing_once_is_retried_into_one_restart(world: World) -> None:
    world.agent_down()
    world.cloud.fail("restart")  # LiveKit Cloud answers 503 once
    await everyone_waits(world, ROOMS)
    await world.wait(15)
    assert world.cloud.restarts == [DEPLOYMENT]
    await world.wait(120)
    assert world.cloud.restarts == [DEPLOYMENT] and await phases(world, ROOMS) == ["agent_active"] * 3


@pytest.mark.parametrize("observed", [False, True])
async def test_an_incident_that_cannot_be_settled_leaves_the_other_agents_settled(
    observed: bool, world: World, caplog: pytest.LogCaptureFixture
) -> None:
    """An open incident this release cannot read (a state a newer release wrote, then rolled back) of an
    agent sorted before the notetaker, one observe mode opened or not (act mode hands it over at its
    first sweep): the sweep logs it and passes it over, and still takes up the notetaker's restart whose
    tries all failed, once its lease ran out."""
    async with world.engine.begin() as connection:
        values = {"id": "IN_newer", "agent_name": "assistant", "open_key": "assistant", "reason": "?"}
        await connection.execute(INCIDENTS.insert().values(**values, opened_at=T0, state="paused"))
        if observed:
            line = {"incident_id": "IN_newer", "at": T0, "action": OBSERVE_MODE, "outcome": "opened"}
            await connection.execute(INCIDENT_ACTIONS.insert().values(**line))
    await world.restart_worker()  # the incident there as it starts
    world.agent_down()
    world.cloud.fail("restart", times=3)  # every try of the first restart: LiveKit Cloud answers 503
    await everyone_waits(world, ROOMS)
    await world.wait(15)
    assert world.cloud.restarts == []
    await world.wait(60 + 10)  # its claim's lease (60 s) ran out: the next sweep claims it again
    assert world.cloud.restarts == [DEPLOYMENT]
    assert "the incidents of agent assistant passed over in this run: ValueError" in caplog.text


async def test_an_outage_soon_after_a_restart_is_not_restarted_again_within_the_cooldown(
    world: World,
) -> None:
    world.agent_down()
    await everyone_waits(world, ROOMS)
    await world.wait(15 + GRACE + JOIN_AFTER)
    assert world.cloud.restarts == [DEPLOYMENT] and (await world.incidents())[0].resolved_at is not None
    world.agent_down()  # down again, a minute after its restart
    await everyone_waits(world, LATER_ROOMS)
    await world.wait(60)
    second, _ = await world.incidents()
    assert second.resolved_at is None and world.webhook.said().count("opened") == 2
    assert world.cloud.restarts == [DEPLOYMENT]  # WARDEN_RESTART_COOLDOWN_SECONDS: 300 s


async def test_agents_still_missing_after_the_restart_are_one_loud_follow_up_and_one_rollback(
    tmp_path: Path,
) -> None:
    async with jobs_world(tmp_path, warden_escalation="restart,rollback") as world:
        world.agent_down()
        world.cloud.on_restart = None  # restarted, and still no agent comes
        await everyone_waits(world, ROOMS)
        await world.wait(100)  # restarted at 15 s, re-checked at 35 s, re-dispatches used up by 80 s
        assert world.cloud.restarts == [DEPLOYMENT] and world.cloud.rollbacks == [DEPLOYMENT]
        assert world.alerts.steps().count(":warning:") == 1
        assert "still does not come after the restart" in world.alerts.sent[1]
        assert world.timers() == []  # the rooms wait for a person now: no loop of re-dispatches
        dispatched = len(world.livekit.dispatched)
        await world.wait(120)
        assert len(world.livekit.dispatched) == dispatched


async def test_a_breach_after_an_incident_resolved_does_not_reopen_it(tmp_path: Path) -> None:
    async with jobs_world(tmp_path, warden_outage_rooms=2) as world:
        first, second, later = ROOMS
        world.agent_down()
        await everyone_waits(world, [first, second])
        await world.wait(15 + GRACE + JOIN_AFTER)  # an outage of two, restarted, resolved
        (incident,) = await world.incidents()
        assert incident.resolved_at is not None
        await world.person_joins(later)  # within the window of the old breaches, and alone
        await world.wait(15 + JOIN_AFTER)
        assert world.livekit.dispatched[-1] == (later, AGENT)
        assert len(await world.incidents()) == 1 and world.webhook.said().count("opened") == 1


async def test_two_agents_of_one_deployment_out_at_once_share_one_restart(tmp_path: Path) -> None:
    """The notetaker and a scribe run on one LiveKit Cloud agent (one `cloud_agent_id` in the rules),
    whose workers are down: two incidents, one restart, and both agents back in every room."""
    rules = tmp_path / "rules.toml"
    rules.write_text(
        f'[[rule]]\nmatch = {{ room = "shared-*" }}\nagents = ["{AGENT}", "scribe"]\n'
        f'cloud_agent_id = "{DEPLOYMENT}"\n'
    )
    settings = {"warden_agent_name": "", "warden_rules": str(rules), "warden_outage_rooms": 1}
    async with jobs_world(tmp_path, **settings) as world:
        world.agent_down(AGENT)
        world.agent_down("scribe")
        world.cloud.on_restart = lambda _agent: world.down.clear()  # the deployment runs both agents
        await everyone_waits(world, ["shared-1", "shared-2"])
        await world.wait(15)
        assert sorted(i.agent_name for i in await world.incidents()) == sorted([AGENT, "scribe"])
        assert world.cloud.restarts == [DEPLOYMENT]
        await world.wait(GRACE + JOIN_AFTER)
        assert all(i.resolved_at is not None for i in await world.incidents())
        assert world.cloud.restarts == [DEPLOYMENT]
        assert sorted(world.livekit.dispatched[-4:]) == sorted(
            (room, name) for room in ("shared-1", "shared-2") for name in (AGENT, "scribe")
        )  # each agent re-dispatched to each room once its deployment was back


async def test_rooms_breaching_into_an_open_incident_and_recovering_are_reported_by_their_own_jobs(
    world: World,
) -> None:
    """During an outage, a breach that only joins the open incident, and a recovery, are reported by the
    room's own job: no incident report job each (issue 30), the incident's course the same."""
    world.agent_down()
    world.cloud.on_restart = None  # restarted, and the agent does not come yet
    await everyone_waits(world, ROOMS)
    await world.wait(16)  # the outage at 15 s: incident opened, deployment restarted
    reports = [job for job, _ in world.outcomes if job.startswith("incident:")]
    assert reports and world.cloud.restarts == [DEPLOYMENT]
    await everyone_waits(world, LATER_ROOMS)
    await world.wait(15.5)  # the later rooms miss their SLA, the incident open
    (incident,) = await world.incidents()
    assert sorted(name for _, name, *_ in incident.rooms) == sorted(ROOMS + LATER_ROOMS)
    world.down.discard(AGENT)  # the agent comes back
    await world.wait(GRACE + 30)
    assert await phases(world, ROOMS + LATER_ROOMS) == ["agent_active"] * 6
    (incident,) = await world.incidents()
    assert incident.resolved_at is not None and world.webhook.said() == ["opened", "restarted", "resolved"]
    assert [job for job, _ in world.outcomes if job.startswith("incident:")] == reports
    assert world.cloud.restarts == [DEPLOYMENT]


async def test_breach_reports_run_after_their_rooms_were_served_open_no_new_incident(tmp_path: Path) -> None:
    # The rooms' breach reports are jobs of their own: under load they may run after the restart, the
    # recovery and the incident's resolution (the recovery in bulk does not wait for them). Late, they
    # are about rooms that no longer wait: no second outage, nobody paged for a resolved one.
    async with jobs_world(tmp_path, warden_outage_rooms=2) as world:
        world.agent_down()
        await everyone_waits(world, ROOMS[:2])
        await world.wait(15 + GRACE + JOIN_AFTER)  # an outage of two, restarted, resolved
        (incident,) = await world.incidents()
        assert incident.resolved_at is not None and await phases(world, ROOMS[:2]) == ["agent_active"] * 2
        for n, room in enumerate(ROOMS[:2]):
            late = action_to_dict(ReportBreach("no agent within the join SLA", agent=AGENT))
            assert await queue_incident_report(world.queue, f"EV_late#{n}", f"RM_{room}", late)
        await world.wait(1)
        assert len(await world.incidents()) == 1 and world.webhook.said().count("opened") == 1

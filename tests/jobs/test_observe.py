"""Observe mode (issue 28, `WARDEN_MODE=observe`), as an operator trying Warden out lives it: Warden
decides as it would in act mode and records each decision, marked not carried out, and makes no call
that changes anything — no dispatch, removal, restart, hook, fallback, room message, alert; the decisions
do not loop, and "would restart" is said once per outage. Then a restart in act mode takes over the rooms
still waiting: they are re-dispatched, and the agent restarted (observe mode's "would restart" counted for
no cooldown). The worker's jobs and escalation in their in-memory world (`tests.support.jobs_world`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import insert, select

from tests.support.jobs_world import AGENT, DEPLOYMENT, World, jobs_world
from workers.store.incidents import Incident
from workers.store.log_rows import ACTION_KIND
from workers.store.models import EVENTS, OUTBOX
from workers.store.queries import find_room

ROOM = "call-42"
OUTAGE = ["call-1", "call-2", "call-3", "call-4"]
OBSERVE: dict[str, Any] = {"warden_mode": "observe"}
PROTECTING: dict[str, Any] = {"warden_fallback_agent": "apology", "warden_notify_room": True}


async def decisions(world: World, room: str) -> list[tuple[str, bool | None]]:
    """The room's decisions as its timeline lists them: (type, carried_out)."""
    found = await find_room(world.engine, room)
    assert found is not None
    return [(e.name, e.data.get("carried_out")) for e in found.timeline if e.kind == ACTION_KIND]


def log(incident: Incident) -> list[tuple[str, str, bool]]:
    return [(action, outcome, done) for _, action, outcome, done in incident.actions]


def nothing_changed(world: World) -> None:
    """No call that changes anything reached LiveKit, LiveKit Cloud, the deploy hook or an alert route."""
    assert world.livekit.dispatched == [] and world.livekit.evicted == [] and world.livekit.withdrawn == []
    assert world.livekit.transferred == [] and world.livekit.sent == []
    assert world.cloud.restarts == [] and world.cloud.rollbacks == [] and world.hook.restarts == []
    assert world.alerts.sent == [] and world.webhook.said() == []


def counted(action: str, mode: str) -> float:
    return REGISTRY.get_sample_value("warden_decisions_total", {"action": action, "mode": mode}) or 0.0


async def test_observe_mode_decides_what_act_mode_decides_and_changes_nothing(tmp_path: Path) -> None:
    (tmp_path / "act").mkdir()
    (tmp_path / "observe").mkdir()
    async with (
        jobs_world(tmp_path / "act", **PROTECTING) as act,
        jobs_world(tmp_path / "observe", **PROTECTING, **OBSERVE) as observe,
    ):
        for world in (act, observe):
            world.agent_down()
            await world.person_joins(ROOM)
            await world.wait(59.9)  # re-dispatched at 15 s and 30 s; the second is given until 60 s
        acted, observed = await decisions(act, ROOM), await decisions(observe, ROOM)
        assert [name for name, _ in observed] == [name for name, _ in acted]
        assert [name for name, done in observed if done is False and name != "SendStatus"] == [
            "Redispatch"
        ] * 2
        assert all(done for _, done in acted) and len(act.livekit.dispatched) == 2
        assert await observe.phase(ROOM) == "waiting"
        nothing_changed(observe)


async def test_a_room_that_never_gets_its_agent_in_observe_mode_would_fail_once_and_stops(
    tmp_path: Path,
) -> None:
    before = counted("Redispatch", "observe"), counted("Restart", "observe")
    async with jobs_world(tmp_path, **PROTECTING, **OBSERVE) as world:
        world.agent_down()
        await world.person_joins(ROOM)
        await world.wait(60)  # re-dispatched at 15 s and 30 s (not carried out), failed at 60 s
        (incident,) = await world.incidents()
        assert ("restart", "would restart: LiveKit Cloud agent restart", False) in log(incident)
        assert (
            "alert",
            "would alert opened (slack, webhook): not sent, WARDEN_OBSERVE_ALERTS is off",
            False,
        ) in log(incident)
        not_made = [name for name, done in await decisions(world, ROOM) if done is False]
        assert (
            not_made.count("Redispatch") == 2 and "DispatchFallback" in not_made and "SendStatus" in not_made
        )
        await world.wait(600)  # sweeps, reconciliation: nothing decided again, nothing due
        assert [name for name, done in await decisions(world, ROOM) if done is False] == not_made
        assert world.timers() == []
        (incident,) = await world.incidents()
        assert [line for line in log(incident) if line[0] == "restart"] == [
            ("restart", "would restart: LiveKit Cloud agent restart", False)
        ]
        nothing_changed(world)
    assert (
        counted("Redispatch", "observe") - before[0] == 2 and counted("Restart", "observe") - before[1] == 1
    )


async def test_a_four_room_outage_in_observe_mode_would_restart_once(tmp_path: Path) -> None:
    async with jobs_world(tmp_path, **OBSERVE) as world:
        world.agent_down()
        for room in OUTAGE:
            await world.person_joins(room)
        await world.wait(15)
        (incident,) = await world.incidents()
        assert sorted(name for _, name, *_ in incident.rooms) == OUTAGE
        assert [o for a, o, done in log(incident) if not done] == [
            "would restart: LiveKit Cloud agent restart",
            "would alert opened (slack, webhook): not sent, WARDEN_OBSERVE_ALERTS is off",
        ]
        await world.wait(900)  # well past the cooldown and the claim's lease: no second "would restart"
        (incident,) = await world.incidents()
        assert [o for a, o, _ in log(incident) if a == "restart"] == [
            "would restart: LiveKit Cloud agent restart"
        ]
        for room in OUTAGE:  # each room as act mode would: two re-dispatches, then failed; nothing loops
            assert [n for n, done in await decisions(world, room) if done is False] == ["Redispatch"] * 2
        assert world.timers() == []
        nothing_changed(world)


async def test_alerts_go_out_in_observe_mode_only_with_observe_alerts_and_say_so(tmp_path: Path) -> None:
    async with jobs_world(tmp_path, warden_outage_rooms=1, warden_observe_alerts=True, **OBSERVE) as world:
        world.agent_down()
        await world.person_joins(ROOM)
        await world.wait(60)
        assert world.webhook.said() == ["opened"] and len(world.alerts.sent) == 1
        assert "observe mode" in world.alerts.sent[0] and "observe mode" in world.webhook.sent[0].text
        assert world.cloud.restarts == [] and world.livekit.dispatched == []


async def test_switching_to_act_re_dispatches_the_rooms_still_waiting_and_restarts_the_agent(
    tmp_path: Path,
) -> None:
    # a claimed restart left with no outcome is taken up again only after its lease: a long one, so that
    # a "would restart" taken for a restart under way would keep act mode from restarting in this test
    async with jobs_world(tmp_path, warden_claim_lease_seconds=3600, **PROTECTING, **OBSERVE) as world:
        world.agent_down()
        for room in OUTAGE:
            await world.person_joins(room)
        await world.wait(120)  # every room failed in observe mode; the incident would restart
        (observed,) = await world.incidents()
        nothing_changed(world)
        await world.restart_worker(warden_mode="act")
        await world.wait(1)  # the first sweep of act mode takes over
        assert sorted(room for room, _ in world.livekit.dispatched) == OUTAGE  # no recorded "would
        # dispatch" is waited on, and no room's failure in observe mode holds act back
        (handed,) = [i for i in await world.incidents() if i.id == observed.id]
        assert handed.resolved_at is not None
        assert ("resolved", "observed (Warden now acts): 4 waiting room(s) looked at afresh", True) in log(
            handed
        )
        await world.wait(120)  # re-dispatched twice more, failed: act's own incident, one real restart
        assert world.cloud.restarts == [DEPLOYMENT]  # observe mode's "would restart" is no cooldown
        # the fallback observe mode decided and never sent is act's to send when the rooms fail again
        assert sorted(room for room, agent in world.livekit.dispatched if agent == "apology") == OUTAGE
        assert world.livekit.sent  # and the rooms are told, as act tells them
        assert [await world.phase(room) for room in OUTAGE] == ["agent_active"] * 4
        assert AGENT not in world.down


async def test_a_stuck_agent_in_observe_mode_would_be_removed_once_then_its_room_fails(
    tmp_path: Path,
) -> None:
    async with jobs_world(
        tmp_path, crons=("sweep", "liveness"), warden_liveness_seconds=15, **OBSERVE
    ) as world:
        world.livekit.app_dispatch(ROOM, AGENT)
        await world.person_joins(ROOM)
        await world.agent_joins(ROOM, "notetaker-0")
        world.livekit.set_state(ROOM, "notetaker-0", "initializing")
        await world.wait(1200)  # it never leaves the state, and nobody removes it
        not_made = [name for name, done in await decisions(world, ROOM) if done is False]
        assert not_made == ["Evict", "Redispatch", "Redispatch"]  # then failed: nothing more is due
        assert world.timers() == []
        (incident,) = await world.incidents()
        assert [o for a, o, _ in log(incident) if a == "restart"] == [
            "would restart: LiveKit Cloud agent restart"
        ]
        nothing_changed(world)


async def test_two_copies_of_the_agent_in_observe_mode_would_lose_one_once(tmp_path: Path) -> None:
    async with jobs_world(tmp_path, **OBSERVE) as world:
        await world.person_joins(ROOM)
        await world.agent_joins(ROOM, "notetaker-1")
        await world.agent_publishes(ROOM, "notetaker-1")
        await world.agent_joins(ROOM, "notetaker-2")
        await world.agent_publishes(ROOM, "notetaker-2")
        await world.wait(600)
        assert [name for name, done in await decisions(world, ROOM) if done is False] == ["Evict"]
        assert await world.phase(ROOM) == "agent_active" and world.timers() == []
        nothing_changed(world)


async def test_after_switching_to_act_an_agent_observe_mode_spared_counts_again(tmp_path: Path) -> None:
    # Observe mode would have removed the second copy (no incident: the room is served). In act mode it
    # is an agent like any other: when the first copy leaves, the second one serves and no third comes.
    async with jobs_world(tmp_path, **OBSERVE) as world:
        await world.person_joins(ROOM)
        await world.agent_joins(ROOM, "notetaker-1")
        await world.agent_publishes(ROOM, "notetaker-1")
        await world.agent_joins(ROOM, "notetaker-2")
        await world.agent_publishes(ROOM, "notetaker-2")
        await world.wait(60)
        assert [name for name, done in await decisions(world, ROOM) if done is False] == ["Evict"]
        await world.restart_worker(warden_mode="act")
        await world.wait(1)
        await world.agent_leaves(ROOM, "notetaker-1")
        await world.wait(600)
        assert world.livekit.dispatched == [] and world.livekit.evicted == []  # the copy there serves
        assert await world.phase(ROOM) in ("agent_present", "agent_active")  # not lost: no incident
        assert await world.incidents() == []


async def test_a_fallback_observe_mode_decided_and_left_in_the_outbox_is_not_sent_by_act(
    tmp_path: Path,
) -> None:
    # The worker died between observe mode's commit and its delivery: the row of its "would dispatch the
    # fallback agent" is left for the sweep. Act mode, restarted, sends no fallback it did not decide.
    async with jobs_world(tmp_path, **PROTECTING, **OBSERVE) as world:
        world.agent_down()
        await world.person_joins(ROOM)
        await world.wait(120)  # the room failed in observe mode: its fallback would have been sent
        async with world.engine.begin() as connection:
            (row,) = await connection.execute(
                select(EVENTS.c.event_id, EVENTS.c.data, EVENTS.c.received_at).where(
                    EVENTS.c.name == "DispatchFallback"
                )
            )
            payload = {k: v for k, v in row.data.items() if k != "carried_out"}
            left = {"id": row.event_id, "room_sid": f"RM_{ROOM}", "kind": "DispatchFallback"}
            await connection.execute(
                insert(OUTBOX).values(
                    **left, payload=payload, created_at=row.received_at, due_at=row.received_at, attempts=1
                )
            )
        await world.restart_worker(warden_mode="act")
        await world.wait(30)  # the sweep delivers what is left; act's own fallback is due much later
        assert [agent for _, agent in world.livekit.dispatched if agent == "apology"] == []
        async with world.engine.connect() as connection:
            assert list(await connection.execute(select(OUTBOX.c.id))) == []  # and it is not kept


async def test_switching_to_act_takes_over_an_incident_observe_mode_decided_nothing_not_carried_out_in(
    tmp_path: Path,
) -> None:
    # Nothing to restart, its alerts sent (WARDEN_OBSERVE_ALERTS): still observe mode's incident, whose
    # room failed by re-dispatches never made; act mode re-dispatches it.
    async with jobs_world(tmp_path, cloud=False, warden_observe_alerts=True, **OBSERVE) as world:
        world.agent_down()
        await world.person_joins(ROOM)
        await world.wait(120)
        assert world.livekit.dispatched == []
        await world.restart_worker(warden_mode="act")
        await world.wait(1)
        assert world.livekit.dispatched == [(ROOM, AGENT)]
        (handed,) = await world.incidents()
        assert handed.resolved_at is not None


@pytest.mark.parametrize("observe_alerts", [True, False])
async def test_switching_to_act_resolves_the_alerts_observe_mode_sent_and_only_those(
    tmp_path: Path, observe_alerts: bool
) -> None:
    # With WARDEN_OBSERVE_ALERTS the "opened" alert went out on Slack and the incident webhook: the hand-
    # over says "resolved" there, else they keep an open alert for ever. Without it, nothing went out, so
    # nothing is said.
    async with jobs_world(
        tmp_path, warden_outage_rooms=1, warden_observe_alerts=observe_alerts, **OBSERVE
    ) as world:
        world.agent_down()
        await world.person_joins(ROOM)
        await world.wait(60)
        (observed,) = await world.incidents()
        opened = ["opened"] if observe_alerts else []
        assert world.webhook.said() == opened and len(world.alerts.sent) == len(opened)
        await world.restart_worker(warden_mode="act")
        await world.wait(5)
        (handed,) = [i for i in await world.incidents() if i.id == observed.id]
        assert handed.resolved_at is not None
        if observe_alerts:
            assert world.webhook.said() == ["opened", "resolved"]
            assert world.webhook.sent[-1].incident_id == observed.id
            assert len(world.alerts.sent) == 2 and f"{observed.id} resolved" in world.alerts.sent[-1]
            assert "observe mode" in world.alerts.sent[-1]
            assert ("incident webhook resolved", "incident webhook answered HTTP 200 (attempt 1)", True) in (
                log(handed)
            )
        else:
            assert world.webhook.said() == [] and world.alerts.sent == []


async def test_a_notice_act_mode_decided_and_observe_mode_delivered_says_it_was_not_carried_out(
    tmp_path: Path,
) -> None:
    # Act mode decides to tell the room; LiveKit is unavailable, so the notice waits in the outbox. The
    # worker restarts in observe mode, whose sweep delivers it: nothing is sent, and the timeline says so.
    async with jobs_world(tmp_path, **PROTECTING) as world:
        world.agent_down()
        world.livekit.fail("send_data", times=1000)
        await world.person_joins(ROOM)
        await world.wait(61)  # failed at 60 s: the fallback dispatched, the room's notices left behind
        assert ("SendStatus", True) in await decisions(world, ROOM) and world.livekit.sent == []
        async with world.engine.connect() as connection:
            left = [kind for (kind,) in await connection.execute(select(OUTBOX.c.kind))]
        assert left and set(left) == {"SendStatus"}
        await world.restart_worker(warden_mode="observe")
        world.livekit.failures.planned.clear()
        await world.wait(30)  # the sweep delivers it; the gate makes nothing of it
        assert world.livekit.sent == []
        async with world.engine.connect() as connection:
            assert list(await connection.execute(select(OUTBOX.c.id))) == []
        found = await find_room(world.engine, ROOM)
        assert found is not None
        told = [e.data for e in found.timeline if e.kind == ACTION_KIND and e.name == "SendStatus"]
        assert len(told) == len(left)
        for line in told:
            assert line["carried_out"] is False
            assert line["withheld"] == "decided in act mode; not carried out: Warden now observes"


async def test_an_alert_still_queued_when_act_takes_over_is_withdrawn_not_sent_after_the_resolution(
    tmp_path: Path,
) -> None:
    # WARDEN_OBSERVE_ALERTS: the "opened" alert reached Slack, but the incident webhook was down, so its
    # "opened" waits in the outbox for another try when act mode takes over and resolves the incident.
    # Sent then, it would open an alert that nothing resolves; it is withdrawn instead (and said so).
    async with jobs_world(tmp_path, warden_outage_rooms=1, warden_observe_alerts=True, **OBSERVE) as world:
        world.webhook.failures.plan("send", times=1000)
        world.agent_down()
        await world.person_joins(ROOM)
        await world.wait(60)
        (observed,) = await world.incidents()
        assert world.webhook.said() == [] and len(world.alerts.sent) == 1  # Slack's "opened"
        world.webhook.failures.planned.clear()  # the incident webhook is back
        await world.restart_worker(warden_mode="act")
        await world.wait(120)  # the sweep delivers what is left in the outbox, many times over
        (handed,) = [i for i in await world.incidents() if i.id == observed.id]
        assert handed.resolved_at is not None
        assert [e.step for e in world.webhook.sent if e.incident_id == observed.id] == []
        assert f"{observed.id} resolved" in world.alerts.sent[1]  # Slack's alert is resolved
        withdrawn = ("incident webhook opened", "not sent: withdrawn, the incident was handed over", False)
        assert withdrawn in log(handed)

"""Protecting the person (issue 27) as the worker carries it out in its in-memory world: the fallback
agent dispatched and removed, a caller transferred once, the room told — through the outbox, so that a
worker that dies between the decision and the call still makes it, once."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from tests.support.fakes import InMemoryLiveKit
from tests.support.jobs_world import AGENT, jobs_world
from workers.core.errors import UpstreamError
from workers.core.protecting import STATUS_TOPIC, RemoveFallback, SendStatus
from workers.core.room import Room
from workers.core.rules import Rules
from workers.jobs.rooms import recording
from workers.jobs.rooms.protect import carry_out
from workers.store.incidents import get_incident

ROOM = "call-42"
NUMBER = "+15550100"
FALLBACK = {"warden_fallback_agent": "apology", "warden_max_redispatches": 0}


async def test_a_web_room_gets_the_fallback_agent_which_goes_when_its_agent_comes(tmp_path: Path) -> None:
    async with jobs_world(tmp_path, cloud=False, **FALLBACK) as world:
        world.agent_down()
        await world.person_joins(ROOM)
        await world.wait(16)  # the join SLA passes; no re-dispatch allowed: failed
        assert world.livekit.dispatched == [(ROOM, "apology")]
        (sent,) = world.livekit.dispatches(ROOM, "apology")
        assert json.loads(sent.metadata) == {"warden_fallback_for": AGENT, "reason": "failed"}
        assert await world.phase(ROOM) == "fallback"
        fallback = [a for a in world.livekit.agents_in(ROOM) if a.startswith("apology")]
        assert len(fallback) == 1
        await world.wait(120)
        assert world.livekit.dispatched == [(ROOM, "apology")]  # once per outage
        await world.agent_joins(ROOM, "agent-1")  # the agent comes after all
        assert world.livekit.evicted == [(ROOM, fallback[0])]
        assert await world.phase(ROOM) == "agent_present"
        timeline = await world.timeline(ROOM)
        assert timeline.count("DispatchFallback") == 1 and timeline.count("RemoveFallback") == 1


async def test_a_fallback_agent_that_stays_is_left_in_the_room(tmp_path: Path) -> None:
    async with jobs_world(tmp_path, cloud=False, warden_fallback_stays=True, **FALLBACK) as world:
        world.agent_down()
        await world.person_joins(ROOM)
        await world.wait(20)
        await world.agent_joins(ROOM, "agent-1")
        assert world.livekit.evicted == []
        assert any(a.startswith("apology") for a in world.livekit.agents_in(ROOM))


async def test_a_caller_is_transferred_once_and_the_number_is_in_no_log_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    settings = {**FALLBACK, "warden_fallback_transfer_to": f"tel:{NUMBER}"}
    async with jobs_world(tmp_path, cloud=False, **settings) as world:
        world.agent_down()
        world.livekit.fail("transfer", landed=True)  # the transfer is made; LiveKit's answer is lost
        await world.caller_joins(ROOM, "sip_caller", "+15559999")
        await world.wait(16)
        assert world.livekit.transferred == [(ROOM, "sip_caller", f"tel:{NUMBER}")]
        await world.wait(120)  # the sweep tries again: the caller has gone, transferred already
        assert world.livekit.transferred == [(ROOM, "sip_caller", f"tel:{NUMBER}")]
        assert world.livekit.dispatched == []  # the transfer takes precedence over the fallback agent
        assert "TransferCaller" in await world.timeline(ROOM)
    lines = [r.getMessage() for r in caplog.records]
    assert any("transferred" in line for line in lines)
    assert not [line for line in lines if "15550100" in line]


async def test_a_refused_transfer_is_logged_masked_and_not_tried_again(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = {**FALLBACK, "warden_fallback_transfer_to": "sip:oncall@pbx.example"}
    async with jobs_world(tmp_path, cloud=False, **settings) as world:
        world.agent_down()
        world.livekit.fail("transfer", refused=True)
        await world.caller_joins(ROOM, "sip_caller", "+15559999")
        await world.wait(60)
        assert world.livekit.transferred == []
    refused = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
    assert refused and "TransferCaller" in refused[0]
    assert not [r for r in caplog.records if "oncall" in r.getMessage()]


async def test_the_room_is_told_each_change_ending_restored(tmp_path: Path) -> None:
    settings = {**FALLBACK, "warden_notify_room": True, "warden_max_redispatches": 1}
    async with jobs_world(tmp_path, cloud=False, **settings) as world:
        world.agent_down()
        await world.person_joins(ROOM)
        await world.wait(60)
        await world.agent_joins(ROOM, "agent-1")
        told = [json.loads(payload) for room, topic, payload in world.livekit.sent if topic == STATUS_TOPIC]
        assert [t["state"] for t in told] == ["waiting", "recovering", "fallback", "restored"]
        assert {t["agent"] for t in told} == {AGENT}
        assert [t["since"] for t in told] == sorted(t["since"] for t in told)


async def test_an_agent_in_time_tells_the_room_nothing(tmp_path: Path) -> None:
    async with jobs_world(tmp_path, warden_notify_room=True, **FALLBACK) as world:
        await world.person_joins(ROOM)
        await world.wait(4)
        await world.agent_joins(ROOM, "agent-1")
        await world.wait(60)
        assert world.livekit.sent == [] and world.livekit.dispatched == []


async def test_a_worker_killed_between_the_decision_and_the_call_still_dispatches_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    delivered = recording.deliver
    killed: list[str] = []

    async def dies_once(effects, done, notices, room):  # type: ignore[no-untyped-def]
        if not killed and any(n.action_name == "DispatchFallback" for n in notices):
            killed.append(room.name)  # the worker dies after the commit: nothing delivered
            return
        await delivered(effects, done, notices, room)

    monkeypatch.setattr(recording, "deliver", dies_once)
    async with jobs_world(tmp_path, cloud=False, **FALLBACK) as world:
        world.agent_down()
        await world.person_joins(ROOM)
        await world.wait(16)
        assert killed == [ROOM] and world.livekit.dispatched == []
        await world.wait(10)  # the sweep finds the notice left behind
        assert world.livekit.dispatched == [(ROOM, "apology")]
        await world.wait(120)
        assert world.livekit.dispatched == [(ROOM, "apology")]


async def test_the_fallback_is_a_line_in_the_agents_incident_log(tmp_path: Path) -> None:
    async with jobs_world(tmp_path, **FALLBACK) as world:
        world.agent_down()
        await world.person_joins(ROOM)
        await world.wait(16)
        (incident,) = await world.incidents()
        found = await get_incident(world.engine, incident.id)
        assert found is not None
        lines = [outcome for _, action, outcome, _ in found.actions if action == "fallback"]
        assert lines == ["room call-42: fallback agent apology dispatched (failed)"]


async def test_waiting_while_the_agents_incident_is_open_brings_the_fallback_before_the_room_fails(
    tmp_path: Path,
) -> None:
    settings = {"warden_fallback_agent": "apology", "warden_outage_rooms": 1, "warden_max_redispatches": 5}
    async with jobs_world(tmp_path, **settings) as world:
        world.agent_down()
        world.cloud.on_restart = None  # the restart does not bring the agent back
        before = _counted("agent")
        await world.person_joins(ROOM)
        await world.wait(29)
        assert world.cloud.restarts and ("apology" not in {a for _, a in world.livekit.dispatched})
        await world.wait(60)
        (sent,) = world.livekit.dispatches(ROOM, "apology")
        assert json.loads(sent.metadata) == {"warden_fallback_for": AGENT, "reason": "outage"}
        assert _counted("agent") == before + 1
        (incident,) = await world.incidents()
        found = await get_incident(world.engine, incident.id)
        assert found is not None
        lines = [o for _, _, o, _ in found.actions]
        assert "room call-42: fallback agent apology dispatched (outage)" in lines


def _counted(kind: str) -> float:
    return (
        REGISTRY.get_sample_value("warden_fallbacks_total", {"agent": AGENT, "kind": kind, "outcome": "done"})
        or 0.0
    )


async def test_a_status_for_a_room_that_ended_is_dropped_not_retried() -> None:
    livekit = InMemoryLiveKit(clock=lambda: 0.0)
    livekit.join(ROOM, "alice")
    told = SendStatus(AGENT, "waiting", 1.0)
    room = Room("RM_call-42", ROOM)

    async def tell() -> str:
        return await carry_out(
            told, room, presence=livekit, dispatcher=livekit, protector=livekit, rules=Rules()
        )

    assert await tell() == ""
    assert len(livekit.sent) == 1
    livekit.fail("send_data")  # LiveKit unavailable while people are there: tried again
    with pytest.raises(UpstreamError):
        await tell()
    livekit.close(ROOM)  # the room ended: livekit-server answers 503 after a wait, and lists nobody
    assert await tell() == ""
    assert len(livekit.sent) == 1


async def test_a_second_outage_in_the_room_gets_a_fallback_agent_again(tmp_path: Path) -> None:
    async with jobs_world(tmp_path, cloud=False, **FALLBACK) as world:
        world.agent_down()
        await world.person_joins(ROOM)
        await world.wait(16)
        (first,) = [a for a in world.livekit.agents_in(ROOM) if a.startswith("apology")]
        await world.agent_joins(ROOM, "agent-1")  # the agent comes: the fallback agent removed
        assert world.livekit.evicted == [(ROOM, first)]
        await world.agent_leaves(ROOM, "agent-1")  # and goes: a second outage, the part fails again
        await world.wait(60)
        assert world.livekit.dispatched == [(ROOM, "apology"), (ROOM, "apology")]
        assert [a for a in world.livekit.agents_in(ROOM) if a.startswith("apology")]


async def test_a_fallback_agent_that_never_came_is_not_said_removed() -> None:
    """The incident's log says a fallback agent was removed only when one was there to remove."""
    livekit = InMemoryLiveKit(clock=lambda: 0.0)
    livekit.join(ROOM, "alice")
    room = Room("RM_call-42", ROOM)

    async def remove() -> str:
        return await carry_out(
            RemoveFallback(AGENT, "apology"),
            room,
            presence=livekit,
            dispatcher=livekit,
            protector=livekit,
            rules=Rules(),
        )

    assert await remove() == "" and livekit.evicted == []
    livekit.join(ROOM, "apology-1", agent_name="apology")
    assert await remove() == f"fallback agent apology removed: {AGENT} came"
    assert livekit.evicted == [(ROOM, "apology-1")]

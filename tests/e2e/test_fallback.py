"""Protecting the person (issue 27) from the Procfile, against the stand-in LiveKit: a phone caller whose
agent never comes is transferred to people once, and neither the caller's number nor the transfer target
is in any log line or in the room's API; a web room gets the fallback agent, which Warden removes when
its agent comes after all, and the room's app is told each step in order, ending `restored`; a worker
killed between the decision to transfer and the call still transfers the caller, once."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from devtools.simulator.livekit import FakeLiveKit
from devtools.simulator.scenarios import abandoned_call, fallback_agent
from devtools.simulator.serving import serve
from tests.support.processes import run_warden
from tests.support.settings import KEY, SECRET
from tests.support.waiting import wait_until
from tests.support.world import AGENT, World
from workers.jobs.runtime.faults import VARIABLE

NUMBER = "+15550100123"  # the caller's
CALL = f"call-_{NUMBER}_a1b2"  # as a SIP dispatch rule names the room
CALLER = f"sip_{NUMBER}"
DESK = "tel:+15550199"  # where callers go: personal data too
FALLBACK = "apology"
ENV = {
    "WARDEN_AGENT_NAME": AGENT,
    "WARDEN_JOIN_SLA_SECONDS": "1.5",
    "WARDEN_REJOIN_SLA_SECONDS": "1.5",
    "WARDEN_SWEEP_SECONDS": "1",
    "WARDEN_FALLBACK_AGENT": FALLBACK,
    "WARDEN_FALLBACK_TRANSFER_TO": DESK,
    "WARDEN_NOTIFY_ROOM": "true",
}


@pytest.fixture
async def world(tmp_path: Path, redis_url: str, request: pytest.FixtureRequest) -> AsyncIterator[World]:
    """Warden with a fallback agent, a transfer target and notices; `param`: its re-dispatches, and a
    fault hook for the worker (or none). The expected agent has no worker: it never comes by itself."""
    redispatches, fault = getattr(request, "param", ("0", ""))
    fake = FakeLiveKit(KEY, SECRET)
    fallback_agent(fake, FALLBACK)  # on other workers: it comes
    async with serve(fake.app) as livekit_url, httpx.AsyncClient() as client:
        env = {
            "REDIS_URL": redis_url,
            "DATABASE_URL": f"sqlite:///{tmp_path}/w.db",
            "LIVEKIT_URL": livekit_url,
            "WARDEN_MAX_REDISPATCHES": redispatches,
            **ENV,
            **({VARIABLE: f"after_commit.{fault}:{tmp_path / 'fault-fired'}"} if fault else {}),
        }
        with run_warden(tmp_path, **env) as warden:
            yield World(fake, warden, client)


async def caller_waits(w: World) -> None:
    """A phone caller reaches `CALL`; the application dispatches the agent, which never comes."""
    await w.tell(CALL, abandoned_call(w.fake, CALL, NUMBER, agent_name=AGENT))


async def caller_gone(w: World) -> None:
    async def left() -> bool:
        return CALLER not in w.fake.rooms.get(CALL, {}) and not (await w.room(CALL)).get("people")

    await wait_until(left, "the caller transferred, out of the room as Warden sees it")


async def test_a_caller_whose_agent_never_comes_is_transferred_once_and_the_numbers_are_in_no_log(
    world: World,
) -> None:
    await caller_waits(world)
    await caller_gone(world)
    (transfer,) = world.fake.transfers
    assert (transfer.room, transfer.identity, transfer.transfer_to, transfer.play_dialtone, transfer.ok) == (
        CALL,
        CALLER,
        DESK,
        True,
        True,
    )
    assert world.fake.live_dispatches(CALL, FALLBACK) == []  # the transfer takes precedence
    shown = json.dumps(await world.room(CALL))
    logged = world.warden.log_text()
    assert "TransferCaller" in shown and "transferred" in logged
    for secret in ("15550100123", "0100123", "15550199", "5550199"):
        at = shown.find(secret)
        assert at < 0, shown[max(0, at - 200) : at + 40]
        assert not [line for line in logged.splitlines() if secret in line], secret
    assert world.fake.transferred() == [(CALL, CALLER, DESK)]  # still once


@pytest.mark.parametrize("world", [("1", "")], indirect=True)
async def test_a_web_room_gets_the_fallback_agent_until_its_agent_comes_and_is_told_each_step(
    world: World,
) -> None:
    room = "web-1"
    await world.person_joins(room)

    async def fallback_here() -> bool:
        return world.fake.copies(room, FALLBACK) == 1 and (await world.room(room))["state"] == "fallback"

    await wait_until(fallback_here, "the fallback agent in the room, the room in fallback")
    (made,) = world.fake.live_dispatches(room, FALLBACK)
    assert json.loads(made.metadata) == {"warden_fallback_for": AGENT, "reason": "failed"}
    (stand_in,) = world.fake.agents_in(room)
    await world.agent_joins(room, "agent-late")  # the expected agent comes after all

    async def restored() -> bool:
        states = [n["state"] for n in world.fake.notices(room)]
        return world.fake.copies(room, FALLBACK) == 0 and states[-1:] == ["restored"]

    await wait_until(restored, "the fallback agent removed and the room told its agent is back")
    notices = world.fake.notices(room)
    assert [n["state"] for n in notices] == ["waiting", "recovering", "fallback", "restored"]
    assert {n["agent"] for n in notices} == {AGENT}
    assert [n["since"] for n in notices] == sorted(n["since"] for n in notices)
    assert all("alice" in m.to for m in world.fake.messages[room])  # the person got each
    left = [
        fields["participant"].get("disconnectReason")
        for _, event, r, fields in world.fake.webhooks
        if r == room and event == "participant_left" and fields["participant"]["identity"] == stand_in
    ]
    assert left == ["PARTICIPANT_REMOVED"]
    assert world.fake.agents_in(room) == ["agent-late"]
    assert [name for r, name in world.fake.created if r == room].count(FALLBACK) == 1


@pytest.mark.parametrize("world", [("0", "TransferCaller")], indirect=True)
async def test_a_worker_killed_between_the_decision_and_the_transfer_still_transfers_once(
    world: World,
) -> None:
    await caller_waits(world)
    (worker, _), *_ = world.warden.running["worker"]

    async def dead() -> bool:
        return worker.poll() is not None

    await wait_until(dead, "the worker killed right after committing the transfer")
    assert worker.returncode == -9 and world.fake.transfers == []
    del world.warden.env[VARIABLE]
    world.warden.start("worker")
    await caller_gone(world)
    assert world.fake.transferred() == [(CALL, CALLER, DESK)]


@pytest.mark.parametrize("world", [("0", "DispatchFallback")], indirect=True)
async def test_a_worker_killed_between_the_decision_and_the_dispatch_still_sends_one_fallback_agent(
    world: World,
) -> None:
    room = "web-2"
    await world.person_joins(room)
    (worker, _), *_ = world.warden.running["worker"]

    async def dead() -> bool:
        return worker.poll() is not None

    await wait_until(dead, "the worker killed right after committing the fallback")
    assert worker.returncode == -9 and world.fake.live_dispatches(room, FALLBACK) == []
    del world.warden.env[VARIABLE]
    world.warden.start("worker")

    async def fallback_here() -> bool:
        return world.fake.copies(room, FALLBACK) == 1 and (await world.room(room))["state"] == "fallback"

    await wait_until(fallback_here, "the fallback agent sent by the fresh worker")
    assert [name for r, name in world.fake.created if r == room].count(FALLBACK) == 1

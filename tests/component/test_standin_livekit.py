"""The stand-in LiveKit behaves as livekit-server v1.13.5 was measured to (`../shared/LIVEKIT.md`, issue 23),
with its faithful timing (`faithful()`), asked through the real livekit-api client over HTTP, on a clock
the test moves: jobs listed 5 s after their worker accepted them, the automatic empty-name dispatch, an
asynchronous DeleteDispatch (a joined agent removed, one on its way still coming), a crashed agent listed
20 s then gone with CONNECTION_TIMEOUT and its job left JS_RUNNING, both agent-name attributes,
`track_unpublished` and `disconnectReason`, no job for a worker at load 0.7, CreateDispatch making a
missing room, no `agent_job_*` webhook and no re-dispatch of its own."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from livekit.api import CreateAgentDispatchRequest, ListParticipantsRequest, LiveKitAPI, TwirpError
from livekit.protocol.agent import JobStateReason, JobStatus
from livekit.protocol.agent_dispatch import AgentDispatch, ListAgentDispatchRequest
from livekit.protocol.models import ParticipantInfo
from livekit.protocol.room import ListRoomsRequest, RoomParticipantIdentity

from devtools.simulator.livekit import (
    CRASH_TIMEOUT,
    ENTRYPOINT_GRACE,
    JOB_LISTING_LAG,
    REMOVAL_WAIT,
    FakeLiveKit,
    ManualClock,
)
from devtools.simulator.plan import Outage, parse_failures
from devtools.simulator.scenarios import cold_start
from devtools.simulator.world import Simulation
from tests.support.harness import AGENT, ROOM, harness
from tests.support.helpers import person
from tests.support.settings import KEY, SECRET
from tests.support.standin import served
from workers.core.room import Phase

T0 = 1_767_225_600.0
EPS = 0.01  # a moment: the stand-in's times are sums of floats


@dataclass
class Standin:
    fake: FakeLiveKit
    clock: ManualClock
    api: LiveKitAPI

    def at(self, seconds: float) -> None:
        """Move the clock to `seconds` after T0 (the stand-in's timers due by then run)."""
        self.clock.now = T0 + seconds

    async def dispatches(self, room: str, name: str | None = None) -> list[AgentDispatch]:
        listed = await self.api.agent_dispatch.list_dispatch(room)
        return [d for d in listed if name is None or d.agent_name == name]

    async def participants(self, room: str) -> dict[str, ParticipantInfo]:
        listed = await self.api.room.list_participants(ListParticipantsRequest(room=room))
        return {p.identity: p for p in listed.participants}

    async def dispatch(self, room: str, name: str) -> AgentDispatch:
        return await self.api.agent_dispatch.create_dispatch(
            CreateAgentDispatchRequest(room=room, agent_name=name)
        )

    def sent(self, room: str) -> list[tuple[str, str, str]]:
        """The webhooks the stand-in sent of its own doing in `room`: (event, identity, disconnect reason)."""
        return [
            (event, fields.get("participant", {}).get("identity", ""), _reason(fields))
            for _, event, r, fields in self.fake.webhooks
            if r == room
        ]


def _reason(fields: dict[str, Any]) -> str:
    return str(fields.get("participant", {}).get("disconnectReason", ""))


@pytest.fixture
async def lk() -> AsyncIterator[Standin]:
    async with served(T0) as (fake, clock, api, _):
        yield Standin(fake, clock, api)
    assert not [w for w in fake.webhooks if w[1].startswith("agent_job")]  # open source: none


async def test_a_job_is_listed_five_seconds_after_its_worker_accepted_it(lk: Standin) -> None:
    worker = lk.fake.add_worker("notetaker", accept_after=0.2, cold_start=1.0)
    lk.fake.join("r", "alice")
    await lk.dispatch("r", "notetaker")
    lk.at(1.2 + EPS)  # accepted at 0.2, its agent connected at 1.2: in the room, its job not listed
    (identity,) = lk.fake.agents_in("r")
    assert identity in await lk.participants("r")
    (made,) = await lk.dispatches("r", "notetaker")
    assert list(made.state.jobs) == [] and made.state.created_at == int(T0 * 1e9)  # nanoseconds
    lk.at(0.2 + JOB_LISTING_LAG - EPS)
    assert [list(d.state.jobs) for d in await lk.dispatches("r", "notetaker")] == [[]]
    lk.at(0.2 + JOB_LISTING_LAG + EPS)
    ((job,),) = [d.state.jobs for d in await lk.dispatches("r", "notetaker")]
    assert (job.state.status, job.state.participant_identity, job.state.worker_id) == (
        JobStatus.JS_RUNNING,
        identity,
        worker.id,
    )
    assert abs(job.state.started_at / 1e9 - (T0 + 0.2)) < 1e-3
    assert [e for e, _, _ in lk.sent("r")] == ["participant_joined", "track_published"]


async def test_rooms_started_without_named_agents_get_the_automatic_empty_name_dispatch(lk: Standin) -> None:
    lk.fake.join("plain", "alice")
    (automatic,) = await lk.dispatches("plain")
    assert (automatic.agent_name, automatic.state.created_at) == ("", int(T0 * 1e9))
    assert lk.fake.start_room("configured", agents=("notetaker",)) == [("room_started", {})]
    assert [d.agent_name for d in await lk.dispatches("configured")] == ["notetaker"]
    assert lk.fake.start_room("configured", agents=("assistant",)) == []  # a later roomConfig: dropped
    assert [d.agent_name for d in await lk.dispatches("configured")] == ["notetaker"]
    lk.fake.add_worker("")  # a worker with no agent name takes automatic dispatches (rooms from now on)
    lk.fake.join("served", "bob")
    lk.at(2)
    (served,) = [p for p in (await lk.participants("served")).values() if p.kind == ParticipantInfo.AGENT]
    assert served.attributes["lk.agent_name"] == ""


async def test_create_dispatch_into_a_missing_room_creates_it_with_its_automatic_dispatch(
    lk: Standin,
) -> None:
    await lk.dispatch("ended", "notetaker")
    assert [r.name for r in (await lk.api.room.list_rooms(ListRoomsRequest(names=["ended"]))).rooms] == [
        "ended"
    ]
    assert [d.agent_name for d in await lk.dispatches("ended")] == ["", "notetaker"]
    assert lk.sent("ended") == [("room_started", "", "")]


async def test_list_dispatch_of_a_room_the_server_does_not_have_is_a_503_after_a_wait(lk: Standin) -> None:
    started = time.monotonic()
    with pytest.raises(TwirpError) as refused:
        await lk.dispatches("nowhere")
    assert refused.value.status == 503 and time.monotonic() - started >= 0.2  # real: ~3 s
    assert await lk.participants("nowhere") == {}  # ListParticipants: an empty list, not an error


async def test_delete_dispatch_answers_at_once_and_removes_a_joined_agent_after_its_wait(lk: Standin) -> None:
    lk.fake.add_worker("notetaker")
    lk.fake.join("r", "alice")
    made = await lk.dispatch("r", "notetaker")
    lk.at(6)
    (identity,) = lk.fake.agents_in("r")
    await lk.api.agent_dispatch.delete_dispatch(made.id, "r")
    assert await lk.dispatches("r", "notetaker") == []  # gone from the list at once
    lk.at(6 + REMOVAL_WAIT - EPS)
    assert identity in await lk.participants("r")  # still there: the removal is behind the answer
    lk.at(6 + REMOVAL_WAIT + EPS)
    assert identity not in await lk.participants("r")
    assert lk.sent("r")[-2:] == [
        ("track_unpublished", identity, ""),
        ("participant_left", identity, "PARTICIPANT_REMOVED"),
    ]


async def test_delete_dispatch_of_an_agent_on_its_way_terminates_the_job_and_the_agent_still_comes(
    lk: Standin,
) -> None:
    """Issue 23's cold start, with a naive watcher (SLA 4 s: delete the job-less dispatch, dispatch
    again): the first agent still joins, and stays until livekit-agents ends its terminated job 15 s
    on, beside the second."""
    cold_start(lk.fake, "notetaker")
    lk.fake.join("r", "alice")
    first = await lk.dispatch("r", "notetaker")
    lk.at(4)
    assert [list(d.state.jobs) for d in await lk.dispatches("r", "notetaker")] == [[]]  # looks unserved
    assert lk.fake.agents_in("r") == []
    await lk.api.agent_dispatch.delete_dispatch(first.id, "r")
    await lk.dispatch("r", "notetaker")
    lk.at(0.2 + 4.5 + EPS)
    (terminated,) = lk.fake.agents_in("r")  # terminated before it connected: it joins all the same
    lk.at(4 + 0.2 + 4.5 + EPS)
    assert lk.fake.copies("r", "notetaker") == 2
    lk.at(4 + ENTRYPOINT_GRACE + EPS)
    assert lk.fake.copies("r", "notetaker") == 1 and terminated not in lk.fake.agents_in("r")
    ((start, end),) = lk.fake.doubled("r", "notetaker")
    assert (round(start - T0, 1), round(end - T0, 1)) == (8.7, 19.0)
    assert ("participant_left", terminated, "CLIENT_INITIATED") in lk.sent("r")  # it went; nobody removed it


async def test_an_agent_whose_entrypoint_ends_with_its_terminated_job_never_comes(lk: Standin) -> None:
    lk.fake.add_worker("notetaker", cold_start=4.5, keeps_running=False)
    lk.fake.join("r", "alice")
    made = await lk.dispatch("r", "notetaker")
    lk.at(1)
    await lk.api.agent_dispatch.delete_dispatch(made.id, "r")
    lk.at(30)
    assert lk.fake.agents_in("r") == [] and lk.sent("r") == []


async def test_a_crashed_agent_is_listed_20_s_then_leaves_with_connection_timeout_its_job_running(
    lk: Standin,
) -> None:
    lk.fake.add_worker("notetaker")
    lk.fake.join("r", "alice")
    await lk.dispatch("r", "notetaker")
    lk.at(10)
    (identity,) = lk.fake.agents_in("r")
    lk.fake.crash("r", identity)
    lk.at(10 + CRASH_TIMEOUT - EPS)
    assert identity in await lk.participants("r")
    lk.at(10 + CRASH_TIMEOUT + EPS)
    assert identity not in await lk.participants("r")
    assert lk.sent("r")[-2:] == [
        ("track_unpublished", identity, ""),
        ("participant_left", identity, "CONNECTION_TIMEOUT"),
    ]
    lk.at(120)  # the open-source server never re-dispatches: nobody comes, the job stays JS_RUNNING
    assert lk.fake.agents_in("r") == []
    ((job,),) = [d.state.jobs for d in await lk.dispatches("r", "notetaker")]
    assert (job.state.status, job.state.participant_identity) == (JobStatus.JS_RUNNING, identity)


async def test_agents_carry_both_name_attributes_and_leaving_says_why(lk: Standin) -> None:
    lk.fake.add_worker("notetaker")
    lk.fake.join("r", "alice")
    await lk.dispatch("r", "notetaker")
    lk.at(2)
    (identity,) = lk.fake.agents_in("r")
    here = await lk.participants("r")
    assert dict(here[identity].attributes) == {"lk.agent_name": "notetaker", "lk.agent.name": "notetaker"}
    assert here[identity].kind == ParticipantInfo.AGENT
    joined = next(f for _, e, _, f in lk.fake.webhooks if e == "participant_joined")
    assert joined["participant"]["kind"] == "AGENT"
    assert joined["participant"]["attributes"] == {"lk.agent_name": "notetaker", "lk.agent.name": "notetaker"}
    assert joined["participant"]["joinedAt"] == str(int(T0 + 1.2))  # protojson: int64 as a string
    # what a test does comes back as webhooks to send: a person without tracks, an agent with one
    assert [(e, f["participant"].get("disconnectReason")) for e, f in lk.fake.leave("r", "alice")] == [
        ("participant_left", "CLIENT_INITIATED")
    ]
    assert [e for e, _ in lk.fake.leave("r", identity)] == ["track_unpublished", "participant_left"]


async def test_workers_at_load_0_7_get_no_job_and_are_not_offered_it_later(lk: Standin) -> None:
    busy = lk.fake.add_worker("notetaker", load=0.7)
    lk.fake.join("r", "alice")
    await lk.dispatch("r", "notetaker")
    lk.at(30)
    assert [list(d.state.jobs) for d in await lk.dispatches("r", "notetaker")] == [[]]
    assert lk.fake.agents_in("r") == [] and busy.jobs == []
    busy.load = 0.1  # free again, and another worker registers: neither is offered the old dispatch
    late = lk.fake.add_worker("notetaker", load=0.2)
    lk.at(60)
    assert lk.fake.agents_in("r") == [] and late.jobs == []
    busy.load = 0.9  # a new dispatch goes to a worker under 0.7
    await lk.dispatch("r2", "notetaker")
    lk.at(70)
    assert (len(busy.jobs), len(late.jobs), len(lk.fake.agents_in("r2"))) == (0, 1, 1)


async def test_remove_participant_is_announced_with_its_reason(lk: Standin) -> None:
    lk.fake.join("r", "alice")
    lk.fake.join("r", "agent-1", agent_name="notetaker")
    lk.fake.publish("r", "agent-1")
    await lk.api.room.remove_participant(RoomParticipantIdentity(room="r", identity="agent-1"))
    assert lk.sent("r") == [
        ("track_unpublished", "agent-1", ""),
        ("participant_left", "agent-1", "PARTICIPANT_REMOVED"),
    ]


async def test_the_harness_delivers_what_the_standin_does_at_the_time_it_does_it(
    tmp_path: Path, redis_url: str
) -> None:
    async with harness(redis_url, f"sqlite:///{tmp_path}/w.db", livekit={"agent_workers": (AGENT,)}) as h:
        h.fake.join(ROOM, "alice")
        await h.send("participant_joined", participant=person("alice"))
        h.fake.create_dispatch(ROOM, AGENT)
        await h.pass_time(2)
        room, whole = await h.room(), await h.whole()
        (identity,) = h.fake.agents_in(ROOM)
        assert [a.identity for a in whole.agents] == [identity] and room.phase is Phase.AGENT_ACTIVE


async def test_the_cold_start_is_never_doubled(tmp_path: Path, redis_url: str) -> None:
    """Issue 23's cold start through the worker's jobs, on the harness's clock: the application's
    dispatch, the agent 4.7 s after it, its job listed at 5.2 s, a 4-s join SLA. Before issue 23 Warden
    deleted the dispatch at the SLA and dispatched again; the first agent came anyway, and the two were
    in the room together from 8.7 s to 19.0 s. Now a dispatch without a job is awaited `LISTING_GRACE`
    after it was made: the agent comes at 4.7 s, and nothing else does."""
    db = f"sqlite:///{tmp_path}/w.db"
    async with harness(redis_url, db, warden_agent_name="", warden_join_sla_seconds=4) as h:
        cold_start(h.fake, AGENT)
        h.fake.join(ROOM, "alice")
        h.fake.create_dispatch(ROOM, AGENT)
        await h.send("participant_joined", participant=person("alice"))
        await h.run_for(30)
        assert h.fake.doubled(ROOM, AGENT) == []
        assert h.fake.copies(ROOM, AGENT) == 1


async def test_a_full_deployment_refuses_jobs_for_want_of_capacity_until_it_is_freed(lk: Standin) -> None:
    """Issue 26's signals, opt-in (v1.13.5 sets no reason): every dispatch made while the agent's
    deployment is full gets a JS_PENDING job with JSR_NO_CAPACITY and no worker, listed after the lag,
    and no agent; freed, the next dispatch is served, its job naming the worker that took it."""
    worker = lk.fake.add_worker("notetaker")
    lk.fake.fill("notetaker")
    lk.fake.join("r", "alice")
    refused = await lk.dispatch("r", "notetaker")
    lk.at(30)
    (listed,) = await lk.dispatches("r", "notetaker")
    (job,) = listed.state.jobs
    assert (job.state.status, job.state.reason, job.state.worker_id) == (
        JobStatus.JS_PENDING,
        JobStateReason.JSR_NO_CAPACITY,
        "",
    )
    assert lk.fake.agents_in("r") == [] and lk.fake.refused(refused.id) and worker.jobs == []
    lk.fake.free("notetaker")
    await lk.dispatch("r2", "notetaker")
    lk.at(60)
    (served,) = (await lk.dispatches("r2", "notetaker"))[0].state.jobs
    assert (served.state.status, served.state.worker_id) == (JobStatus.JS_RUNNING, worker.id)
    assert len(lk.fake.agents_in("r2")) == 1


async def test_livekit_retrying_an_assignment_lists_it_at_once_then_serves_it(lk: Standin) -> None:
    lk.fake.add_worker("notetaker")
    lk.fake.retry("notetaker", 12.0)
    await lk.dispatch("r", "notetaker")
    lk.at(1)
    (job,) = (await lk.dispatches("r", "notetaker"))[0].state.jobs
    assert (job.state.status, job.state.reason) == (JobStatus.JS_PENDING, JobStateReason.JSR_RETRYING)
    assert lk.fake.agents_in("r") == []
    lk.at(14)
    assert len(lk.fake.agents_in("r")) == 1


async def test_a_cancelled_job_is_listed_cancelled_and_its_agent_never_comes(lk: Standin) -> None:
    lk.fake.add_worker("notetaker", cold_start=4.0)
    made = await lk.dispatch("r", "notetaker")
    lk.fake.cancel_job(made.id)
    lk.at(30)
    (job,) = (await lk.dispatches("r", "notetaker"))[0].state.jobs
    assert job.state.status == JobStatus.JS_CANCELLED and lk.fake.agents_in("r") == []


async def test_the_simulation_brings_no_agent_while_its_workers_are_full() -> None:
    """`full:START+LENGTH` (the demo's spell of full workers): the simulated application's agent is
    refused with JSR_NO_CAPACITY, and nobody comes; the plan parses it as a window."""
    assert parse_failures("full:280+30").full == Outage(280, 30)
    clock = ManualClock(T0)
    fake = FakeLiveKit(KEY, SECRET, clock=clock)
    async with httpx.AsyncClient(transport=httpx.MockTransport(lambda _: httpx.Response(200))) as client:
        sim = Simulation(
            fake,
            client,
            "http://warden/webhook",
            "demo-agent",
            parse_failures("full:0+3600"),
            agent_delay=(0, 0),
        )
        fake.join("r", "alice")
        refused = fake.create_dispatch("r", "demo-agent")
        await asyncio.gather(*sim._tasks)
        assert fake.agents_in("r") == [] and fake.refused(refused.id) and sim.finish().refused == 1
        clock.now = T0 + 10
        (job,) = fake._ListDispatch(ListAgentDispatchRequest(room="r")).agent_dispatches[-1].state.jobs
        assert job.state.reason == JobStateReason.JSR_NO_CAPACITY

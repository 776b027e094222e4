"""Canary runs (`workers.jobs.canaries.runner`) on a real Redis and database: a canary passes when the
agent comes (told by its webhook, or seen in the room when the webhook is lost) and fails when it does
not; its room is deleted either way; failures in a row go to the agent's incidents, a pass to its open
incident; a canary whose job LiveKit refused for want of capacity is `capacity`, told to the
capacity incident and never counted as an outage's failure; two workers run one canary at a time; a
run a dead worker left is finished and its room deleted by the next. LiveKit here is a small in-memory
one (the stand-in's CreateRoom and DeleteRoom, through the real client, are tested in
test_standin_livekit; workers full, in test_canary_capacity); the incidents are tested below too."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from redis.asyncio import Redis
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncEngine

from workers.core.canary import CanaryPolicy, Outcome
from workers.core.events import DispatchInfo, Event, EventKind, JobInfo, JobReason, JobStatus, Participant
from workers.core.incident import IncidentPolicy, IncidentState, Report, Signal
from workers.core.personal import AGENT_KIND
from workers.jobs.canaries.metrics import CANARY_RUNS
from workers.jobs.canaries.runner import Canaries, heard
from workers.store import canary_runs, incident_steps, incidents
from workers.store.models import INCIDENTS

pytestmark = pytest.mark.asyncio

SLA = 0.5


class CanaryLiveKit:
    """Rooms made and deleted, and an agent that comes (`comes`: by webhook after that many seconds;
    "listed": only seen in the room, its webhook lost; None: never; "full": never, its job refused for
    want of capacity)."""

    def __init__(
        self, redis: Redis, comes: float | str | None = 0.05, told: EventKind = EventKind.PARTICIPANT_JOINED
    ) -> None:
        self.redis, self.comes, self.told = redis, comes, told
        self.dispatches: dict[str, tuple[DispatchInfo, ...]] = {}
        self.rooms: set[str] = set()
        self.created: list[str] = []
        self.present: set[str] = set()
        self.tasks: list[asyncio.Task[None]] = []

    async def create_room(self, room: str, empty_timeout: int, metadata: str) -> None:
        assert metadata == '{"warden_canary": true}' and empty_timeout > 0
        self.rooms.add(room)
        self.created.append(room)

    async def dispatch(self, room: str, agent_name: str, metadata: str) -> str:
        assert metadata == '{"warden_canary": true}'
        if self.comes == "listed":
            self.present.add(room)
        elif isinstance(self.comes, float):
            self.tasks.append(asyncio.create_task(self._arrive(room, agent_name, self.comes)))
        jobs = (JobInfo(JobStatus.PENDING, JobReason.NO_CAPACITY),) if self.comes == "full" else ()
        self.dispatches[room] = (DispatchInfo(f"AD_{room}", agent_name, created_at=time.time(), jobs=jobs),)
        return f"AD_{room}"

    async def listed_dispatches(self, room: str) -> tuple[DispatchInfo, ...]:
        assert room in self.rooms  # asked before the room is deleted: LiveKit lists only a room it has
        return self.dispatches.get(room, ())

    async def _arrive(self, room: str, agent_name: str, after: float) -> None:
        await asyncio.sleep(after)
        if self.told is EventKind.PARTICIPANT_JOINED:  # else it left already
            self.present.add(room)
        agent = Participant("agent-1", kind=AGENT_KIND, agent_name=agent_name)
        await heard(
            self.redis,
            Event(f"EV_{room}", self.told, str(self.told), 0, "RM_c", room, agent),
        )

    async def agent_in(self, room: str, agent_name: str) -> bool:
        return room in self.present and room in self.rooms

    async def delete_room(self, room: str) -> None:
        self.rooms.discard(room)

    async def room_names(self) -> list[str]:
        return sorted(self.rooms)


class Reports:
    def __init__(self) -> None:
        self.said: list[tuple[str, ...]] = []

    async def canary_failed(self, agent: str, reason: str, room: str) -> None:
        self.said.append(("failed", agent, reason))

    async def canary_passed(self, agent: str) -> None:
        self.said.append(("passed", agent))

    async def canary_full(self, agent: str, reason: str, room: str) -> None:
        self.said.append(("full", agent, reason))


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_url)
    yield client
    await client.aclose()


def canaries(
    engine: Any, redis: Redis, livekit: CanaryLiveKit, reports: Reports, every: float = 0.0
) -> Canaries:
    return Canaries(
        engine=engine,
        redis=redis,
        rooms=livekit,
        reports=reports,
        policies=[CanaryPolicy("voice", every=every, sla=SLA, failures=2)],
        clock=time.time,
        listing_lag=0.0,
    )


def runs(outcome: str) -> float:
    return CANARY_RUNS.labels(agent="voice", outcome=outcome)._value.get()


async def test_an_agent_that_comes_passes_and_its_room_is_deleted(engine: AsyncEngine, redis: Redis) -> None:
    livekit, reports = CanaryLiveKit(redis), Reports()
    passed = runs("pass")
    assert await canaries(engine, redis, livekit, reports).tick() == {"voice": "pass"}
    [run] = await canary_runs.recent(engine, "voice", 5)
    assert run.outcome is Outcome.PASSED and run.seconds is not None and 0.04 < run.seconds < SLA
    assert livekit.created == [run.room] == [f"warden-canary-voice-{run.n}"] and not livekit.rooms
    assert runs("pass") == passed + 1 and reports.said == []  # no open incident to tell


async def test_an_agent_seen_in_the_room_passes_when_its_webhook_is_lost(
    engine: AsyncEngine, redis: Redis
) -> None:
    livekit = CanaryLiveKit(redis, comes="listed")
    assert await canaries(engine, redis, livekit, Reports()).tick() == {"voice": "pass"}
    assert not livekit.rooms


@pytest.mark.parametrize("told", [EventKind.PARTICIPANT_LEFT, EventKind.PARTICIPANT_CONNECTION_ABORTED])
async def test_an_agent_that_left_at_once_passes_by_its_leaving_webhook(
    engine: AsyncEngine, redis: Redis, told: EventKind
) -> None:
    """The agent's side leaves a canary within milliseconds: should its joining webhook be lost, its
    leaving one still says it came (no look at the room would find it). Leaving faster still,
    livekit-server reports the visit as `participant_connection_aborted` (seen in 2 of 71 visits)."""
    livekit = CanaryLiveKit(redis, told=told)
    assert await canaries(engine, redis, livekit, Reports()).tick() == {"voice": "pass"}


async def test_an_agent_whose_canary_fails_on_its_own_leaves_the_others_outcomes(
    engine: AsyncEngine, redis: Redis, caplog: pytest.LogCaptureFixture
) -> None:
    """One agent's open incident cannot be read (a state a newer release wrote, then rolled back): its
    canary fails on its own (logged, "error"), and the other agent's canary, run in the same tick,
    keeps its outcome."""
    async with engine.begin() as connection:
        values = {"id": "IN_newer", "agent_name": "assistant", "open_key": "assistant", "reason": "?"}
        await connection.execute(INCIDENTS.insert().values(**values, opened_at=time.time(), state="paused"))
    runner = canaries(engine, redis, CanaryLiveKit(redis), Reports())
    runner.policies = (CanaryPolicy("assistant", every=0.0, sla=SLA, failures=2), *runner.policies)
    assert await runner.tick() == {"assistant": "error", "voice": "pass"}
    assert "the canary of assistant passed over in this run: ValueError" in caplog.text


async def test_failures_in_a_row_report_an_outage_and_the_room_is_deleted_each_time(
    engine: AsyncEngine, redis: Redis
) -> None:
    livekit, reports = CanaryLiveKit(redis, comes=None), Reports()
    runner = canaries(engine, redis, livekit, reports)
    assert await runner.tick() == {"voice": "fail"}
    assert reports.said == [] and not livekit.rooms  # one failure is not an outage
    assert await runner.tick() == {"voice": "fail"}
    assert reports.said == [
        (
            "failed",
            "voice",
            f"canary: 2 canaries in a row failed (the agent did not come within {SLA * 2:g} s; "
            "no worker took its job)",
        )
    ]
    assert not livekit.rooms and len(livekit.created) == 2


async def test_workers_full_make_capacity_runs_told_to_the_capacity_incident_never_an_outage(
    engine: AsyncEngine, redis: Redis
) -> None:
    livekit, reports = CanaryLiveKit(redis, comes="full"), Reports()
    runner = canaries(engine, redis, livekit, reports)
    counted = runs("capacity")
    assert [await runner.tick(), await runner.tick()] == [{"voice": "capacity"}] * 2
    refused = (
        "canary: LiveKit refused its job for want of capacity (JSR_NO_CAPACITY): the agent's workers are full"
    )
    assert reports.said == [("full", "voice", refused)] * 2  # no "failed": no outage, no restart
    [latest] = await canary_runs.recent(engine, "voice", 1)
    assert latest.outcome is Outcome.CAPACITY and latest.seconds is None
    assert not livekit.rooms and runs("capacity") == counted + 2
    # a no-show, a refusal, a no-show: the refusal neither counts nor breaks the outage's streak
    livekit.comes = None
    assert await runner.tick() == {"voice": "fail"}
    [latest] = await canary_runs.recent(engine, "voice", 1)
    assert latest.detail.endswith("; no worker took its job") and len(reports.said) == 2
    livekit.comes = "full"
    assert await runner.tick() == {"voice": "capacity"}
    livekit.comes = None
    assert await runner.tick() == {"voice": "fail"}
    assert reports.said[2:] == [
        ("full", "voice", refused),
        (
            "failed",
            "voice",
            "canary: 2 canaries in a row failed (the agent did not come within 1 s; no worker took its job)",
        ),
    ]


async def test_a_late_agent_fails_with_its_time_recorded(engine: AsyncEngine, redis: Redis) -> None:
    livekit = CanaryLiveKit(redis, comes=SLA + 0.2)
    assert await canaries(engine, redis, livekit, Reports()).tick() == {"voice": "fail"}
    [run] = await canary_runs.recent(engine, "voice", 1)
    assert run.seconds is not None and SLA < run.seconds < 2 * SLA and "past its" in run.detail


async def test_two_workers_run_one_canary_at_a_time(engine: AsyncEngine, redis: Redis) -> None:
    livekit = CanaryLiveKit(redis, comes=0.2)
    first, second = canaries(engine, redis, livekit, Reports()), canaries(engine, redis, livekit, Reports())
    done = await asyncio.gather(first.tick(), second.tick())
    assert sorted(d["voice"] for d in done) in (["busy", "pass"], ["not due", "pass"])
    assert len(livekit.created) == 1 and len(await canary_runs.recent(engine, "voice", 5)) == 1


async def test_the_next_run_finishes_a_dead_workers_run_and_deletes_its_room(
    engine: AsyncEngine, redis: Redis
) -> None:
    livekit, reports = CanaryLiveKit(redis), Reports()
    dead = await canary_runs.start(engine, "voice", time.time() - 30)  # its worker died mid-run
    livekit.rooms |= {dead.room, "warden-canary-voice-999", "warden-canary-voice-b-1", "support-1"}
    assert await canaries(engine, redis, livekit, reports).tick() == {"voice": "pass"}
    latest, left = await canary_runs.recent(engine, "voice", 2)
    assert left.n == dead.n and left.outcome is Outcome.INTERRUPTED and latest.outcome is Outcome.PASSED
    # every room of this agent's canaries is gone; another agent's ("voice-b") and user rooms stay
    assert livekit.rooms == {"warden-canary-voice-b-1", "support-1"}


async def test_after_a_restart_canaries_within_its_grace_do_not_count(
    engine: AsyncEngine, redis: Redis
) -> None:
    """The deployment is given the restart's grace to come up: canaries failing within it are no
    follow-up (the lab saw a deploy hook's 200 long before its workers were up)."""
    livekit, reports = CanaryLiveKit(redis, comes=None), Reports()
    await incident_steps.report(
        engine, "voice", Report(Signal.CANARY_FAILED, time.time(), reason="canary"), IncidentPolicy()
    )
    async with engine.begin() as connection:
        await connection.execute(update(INCIDENTS).values(state="restarted", restarted_at=time.time()))
    runner = Canaries(
        engine=engine,
        redis=redis,
        rooms=livekit,
        reports=reports,
        policies=[CanaryPolicy("voice", every=0.0, sla=SLA, failures=2, restart_grace=30.0)],
        clock=time.time,
        listing_lag=0.0,
    )
    assert [await runner.tick(), await runner.tick()] == [{"voice": "fail"}] * 2
    assert reports.said == []


async def test_a_pass_is_told_to_the_open_incident_only(engine: AsyncEngine, redis: Redis) -> None:
    livekit, reports = CanaryLiveKit(redis), Reports()
    await incident_steps.report(
        engine, "voice", Report(Signal.CANARY_FAILED, time.time(), reason="canary"), IncidentPolicy()
    )
    assert await canaries(engine, redis, livekit, reports).tick() == {"voice": "pass"}
    assert reports.said == [("passed", "voice")]


async def test_a_failing_canarys_incident_outlives_its_rooms_and_ends_with_a_pass(
    engine: AsyncEngine,
) -> None:
    """Marked by failed canaries, the incident stays open when its rooms recover; a pass resolves it."""
    report = Report(Signal.CANARY_FAILED, 100.0, reason="canary: 2 canaries in a row failed")
    opened = await incident_steps.report(engine, "voice", report, IncidentPolicy())
    assert opened is not None and opened.incident.canary_failing
    assert opened.incident.state is IncidentState.NOT_RESTARTED  # nothing to restart here
    settled = await incidents.room_recovered(engine, "voice", "", 110.0)  # the sweep: no room waits
    assert settled is not None and settled.incident.state is IncidentState.NOT_RESTARTED
    assert (await incident_steps.open_incident(engine, "voice")) is not None
    resolved = await incidents.room_recovered(engine, "voice", "", 120.0, canary_passed=True)
    assert resolved is not None and resolved.incident.state is IncidentState.RESOLVED
    assert await incident_steps.open_incident(engine, "voice") is None


async def test_a_wait_ending_within_a_millisecond_does_not_block_for_good(
    engine: AsyncEngine, redis: Redis
) -> None:
    """Redis reads a BLPOP timeout in whole milliseconds, and 0 blocks for ever: the last slice of a wait
    that ends within a millisecond must still end (a clock that moves 0.9996 s between two readings)."""
    readings = iter([100.0, 100.0, 100.9996])
    runner = Canaries(
        engine=engine,
        redis=redis,
        rooms=CanaryLiveKit(redis, comes=None),
        reports=Reports(),
        policies=[CanaryPolicy("voice", every=0.0, sla=SLA)],
        clock=lambda: next(readings, 200.0),
    )
    async with asyncio.timeout(5):
        assert await runner._wait("warden-canary-voice-1", runner.policies[0], 100.0) is None

"""Recovery scenarios: Warden's worker jobs against a stand-in LiveKit, driven through the real client."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from arq.worker import Retry

from tests.support.harness import AGENT, ROOM, SID, Harness, harness
from tests.support.helpers import agent, person
from workers.core.room import Phase, Recovery
from workers.jobs.rooms.jobs import heartbeat, on_deadline


@pytest.fixture
async def h(redis_url: str, database_url: str) -> AsyncIterator[Harness]:
    async with harness(redis_url, database_url) as ready:
        yield ready


async def person_joins(h: Harness, identity: str = "alice") -> None:
    h.fake.join(ROOM, identity)
    await h.send("participant_joined", participant=person(identity))


async def agent_joins(h: Harness, identity: str = "agent-1") -> None:
    h.fake.join(ROOM, identity, agent_name=AGENT)
    await h.send("participant_joined", participant=agent(identity, AGENT))


async def agent_leaves(h: Harness, identity: str = "agent-1") -> None:
    h.fake.leave(ROOM, identity)
    await h.send("participant_left", participant=agent(identity, AGENT))


async def test_agent_in_time_means_nothing_happens(h: Harness) -> None:
    await person_joins(h)
    assert await h.timers() == [f"deadline:{SID}:1"]
    h.advance(4)
    await agent_joins(h)
    h.advance(11)
    assert await h.run_deadline(SID, 1) == "stale"
    assert h.fake.created == [] and h.fake.calls == []
    assert (await h.room()).phase is Phase.AGENT_PRESENT


async def test_never_joined_gets_one_redispatch_after_the_sla_not_before_then_quiet(h: Harness) -> None:
    await person_joins(h)
    deadline = (await h.room()).deadline
    assert deadline is not None and deadline.at == h.clock.now + 15
    h.clock.now = deadline.at - 1  # a second early: ARQ is told to come back when it is due
    with pytest.raises(Retry) as early:
        await on_deadline(h.ctx, SID, 1)
    assert early.value.defer_score == 1000
    assert h.fake.created == [] and h.fake.calls == []
    h.clock.now = deadline.at
    assert await h.run_deadline(SID, 1) == "none"
    assert h.fake.created == [(ROOM, AGENT)]
    room = await h.room()
    assert (room.redispatches, room.deadline and room.deadline.reason) == (1, "confirm")
    await agent_joins(h)
    assert await h.run_deadline(SID, 2) == "stale"
    assert h.fake.created == [(ROOM, AGENT)]
    assert (await h.room()).recovery is Recovery.NONE


async def test_agent_arriving_after_the_second_redispatch_ends_the_incident(h: Harness) -> None:
    await person_joins(h)
    await h.fire()
    await h.fire()
    assert h.fake.created == [(ROOM, AGENT), (ROOM, AGENT)]
    assert len(h.fake.live_dispatches(ROOM, AGENT)) == 1  # the first, stale one was deleted
    await agent_joins(h)
    room = await h.room()
    assert (room.phase, room.recovery, room.redispatches, room.deadline) == (
        Phase.AGENT_PRESENT,
        Recovery.NONE,
        0,
        None,
    )


async def test_exhausted_redispatches_escalate_once_and_stop(h: Harness) -> None:
    await person_joins(h)
    for _ in range(3):
        await h.fire()
    room = await h.room()
    assert (room.recovery, room.deadline) == (Recovery.FAILED, None)
    assert len(h.fake.created) == 2
    assert h.incidents.failed == [(ROOM, "no agent after 2 re-dispatch(es)")]
    await person_joins(h, "bob")  # more people: still failed, no new deadline, no loop
    assert (await h.room()).deadline is None and len(h.incidents.failed) == 1


async def test_agent_that_leaves_is_replaced_after_the_rejoin_sla(h: Harness) -> None:
    await person_joins(h)
    await agent_joins(h)
    h.advance(60)
    await agent_leaves(h)
    room = await h.room()
    assert room.phase is Phase.AGENT_LOST and room.deadline is not None
    assert room.deadline.at == int(h.clock.now) + 20
    await h.fire()
    assert h.fake.created == [(ROOM, AGENT)]


async def test_livekits_own_replacement_arriving_first_means_no_redispatch(h: Harness) -> None:
    await person_joins(h)
    await agent_joins(h)
    await agent_leaves(h)
    h.advance(15)  # LiveKit re-dispatches a crashed agent after about 15 s
    await agent_joins(h, "agent-2")
    assert await h.run_deadline(SID, (await h.whole()).attempt) == "stale"
    assert h.fake.created == []


async def test_agent_leaving_after_everyone_else_changes_nothing(h: Harness) -> None:
    await person_joins(h)
    await agent_joins(h)
    h.fake.leave(ROOM, "alice")
    await h.send("participant_left", participant=person("alice"))
    await agent_leaves(h)
    room = await h.room()
    assert (room.phase, room.deadline) == (Phase.IDLE, None)
    assert h.fake.calls == []


async def test_room_finishing_before_the_sla_changes_nothing(h: Harness) -> None:
    await person_joins(h)
    h.advance(5)
    await h.send("room_finished")
    h.advance(20)
    assert await h.run_deadline(SID, 1) == "stale"
    assert (await h.room()).phase is Phase.CLOSED and h.fake.calls == []


async def test_duplicated_and_reordered_webhooks_cause_no_spurious_action(h: Harness) -> None:
    h.fake.join(ROOM, "alice")
    h.fake.join(ROOM, "agent-1", agent_name=AGENT)
    t = h.clock.now
    await h.send("participant_joined", participant=agent("agent-1", AGENT), at=t + 2, event_id="EV_agent")
    await h.send("participant_joined", participant=person("alice"), at=t, event_id="EV_alice")  # late
    await h.send(
        "participant_joined", participant=agent("agent-1", AGENT), at=t + 2, event_id="EV_agent"
    )  # dup
    await h.send("participant_joined", participant=person("alice"), at=t, event_id="EV_alice")  # dup
    h.advance(30)
    room = await h.room()
    assert (room.phase, room.deadline) == (Phase.AGENT_PRESENT, None)
    assert await h.run_deadline(SID, 1) == "stale"
    assert h.fake.calls == []


async def test_lost_agent_webhook_is_made_up_by_asking_livekit(h: Harness) -> None:
    await person_joins(h)
    h.fake.join(ROOM, "agent-1", agent_name=AGENT)  # its participant_joined never arrives
    assert await h.fire() == "none"
    assert h.fake.created == []
    assert [c[0] for c in h.fake.calls] == ["ListRooms", "ListParticipants", "ListDispatch"]
    room, whole = await h.room(), await h.whole()
    assert room.phase is Phase.AGENT_PRESENT and [a.identity for a in whole.agents] == ["agent-1"]


async def test_503_twice_still_leaves_exactly_one_live_dispatch(h: Harness) -> None:
    await person_joins(h)
    h.fake.fail("CreateDispatch", 503)  # refused outright
    h.fake.fail_after("CreateDispatch", 503)  # landed, but the answer was lost
    await h.fire()
    assert len(h.fake.live_dispatches(ROOM, AGENT)) == 1
    assert (await h.room()).redispatches == 1


async def test_4xx_from_livekit_is_recorded_and_escalated_not_retried(h: Harness) -> None:
    await person_joins(h)
    h.fake.fail("ListParticipants", 403)
    assert await h.fire() == "failed"
    room = await h.room()
    assert room.error.startswith("LiveKit refused: permission_denied")
    assert len(h.incidents.failed) == 1 and h.fake.created == []


async def test_room_gone_from_livekit_is_closed(h: Harness) -> None:
    await h.send("participant_joined", participant=person("alice"))  # LiveKit never had it
    await h.fire()
    assert (await h.room()).phase is Phase.CLOSED and h.fake.created == []


async def test_lost_timer_still_fires_through_the_sweep(h: Harness) -> None:
    from workers.jobs.rooms.crons import sweep

    await person_joins(h)
    await h.queue.flushdb()  # the deferred job is lost (say, Redis restarted without persistence)
    assert await h.timers() == []
    h.advance(10)
    assert await sweep(h.ctx) == 0  # not overdue yet
    h.advance(10)
    assert await sweep(h.ctx) == 1
    assert await h.timers() == [f"deadline:{SID}:1"]
    assert await h.run_deadline(SID, 1) == "none"
    assert h.fake.created == [(ROOM, AGENT)]


async def test_timeline_reads_like_the_decision_tree(
    h: Harness,
) -> None:
    from workers.store.queries import find_room

    await person_joins(h)
    await h.fire()
    found = await find_room(h.engine, ROOM)
    assert found is not None
    assert [e.name for e in found.timeline] == [
        "participant_joined",
        "ScheduleDeadline",
        "deadline_passed",
        "CheckPresence",
        "presence_observed",
        "Redispatch",
        "ReportBreach",  # the SLA was missed: it counts towards an outage
        "agent_dispatched",
        "ScheduleDeadline",
    ]


async def test_stalled_agent_is_evicted_and_replaced(redis_url: str, database_url: str) -> None:
    async with harness(redis_url, database_url, warden_active_sla_seconds=10) as h:
        await person_joins(h)
        await agent_joins(h)  # joins, but never publishes a track nor sends a heartbeat
        deadline = (await h.room()).deadline
        assert deadline is not None and (deadline.reason, deadline.at) == ("active", h.clock.now + 10)
        await h.fire()
        assert ("RemoveParticipant", ROOM) in h.fake.calls
        assert h.fake.agents_in(ROOM) == [] and h.fake.created == [(ROOM, AGENT)]
        room, whole = await h.room(), await h.whole()
        assert whole.agents == () and room.redispatches == 1


async def test_heartbeat_or_track_keeps_an_agent_from_counting_as_stalled(
    redis_url: str, database_url: str
) -> None:
    async with harness(redis_url, database_url, warden_active_sla_seconds=10) as h:
        await person_joins(h)
        await agent_joins(h)
        h.advance(5)
        assert await heartbeat(h.ctx, ROOM, "agent-1", h.clock.now) == "applied"
        room = await h.room()
        assert (room.phase, room.deadline) == (Phase.AGENT_ACTIVE, None)
        h.advance(30)
        assert await h.run_deadline(SID, 2) == "stale"
        assert h.fake.calls == []


async def test_dispatch_on_start_creates_the_first_dispatch_once(redis_url: str, database_url: str) -> None:
    async with harness(redis_url, database_url, warden_dispatch_on_start=True) as h:
        await person_joins(h)
        await person_joins(h, "bob")
        assert h.fake.created == [(ROOM, AGENT)]


async def test_sla_can_run_from_room_start(redis_url: str, database_url: str) -> None:
    async with harness(redis_url, database_url, warden_sla_from="room_started") as h:
        started = h.clock.now
        await h.send("room_started")
        h.advance(10)
        await person_joins(h)
        deadline = (await h.room()).deadline
        assert deadline is not None and deadline.at == started + 15


async def test_livekit_slower_than_the_timeout_is_retried_and_ends_with_one_dispatch(h: Harness) -> None:
    await person_joins(h)
    h.fake.slow("ListParticipants", 3.0)  # longer than the client's 2 s timeout
    h.fake.slow("CreateDispatch", 3.0)  # this one lands, but its answer comes too late
    assert await h.fire() == "none"
    assert len(h.fake.live_dispatches(ROOM, AGENT)) == 1
    # the check timed out once and was asked again; so was the re-dispatch, which looks who is there first
    asked = [c[0] for c in h.fake.calls if c[0] in ("ListParticipants", "CreateDispatch")]
    assert asked == ["ListParticipants"] * 3 + ["CreateDispatch", "ListParticipants", "CreateDispatch"]
    room = await h.room()
    assert (room.redispatches, room.recovery) == (1, Recovery.NONE)

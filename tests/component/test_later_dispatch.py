"""Issue 23's later dispatch, through the worker's jobs and crons and the real livekit-api client against
the stand-in LiveKit (its faithful timing: jobs listed 5 s after their worker took them, the automatic
empty-name dispatch), on the harness's clock: a room with people and a warm assistant, to which the
application adds a notetaker 30 s in. With zero configuration, Warden learns it when it next lists the
room's dispatches (reconciliation, here run by hand at its production period, 30 s) and watches it
from its dispatch: never served, it is re-dispatched at its own SLA; served, it is left alone."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from devtools.simulator.livekit import room_sid
from tests.support.harness import ROOM, Harness, harness
from tests.support.helpers import person
from workers.core.room import Phase
from workers.jobs.rooms.crons import discover, reconcile

ASSISTANT, NOTETAKER = "assistant", "notetaker"
SID = room_sid(ROOM)  # the stand-in's sid for the room, which reconciliation compares with Warden's


async def joins(h: Harness, identity: str) -> None:
    h.fake.join(ROOM, identity)
    await h.send("participant_joined", sid=SID, participant=person(identity))


@pytest.fixture
async def h(tmp_path: Path, redis_url: str) -> AsyncIterator[Harness]:
    settings = {"warden_agent_name": "", "warden_join_sla_seconds": 15}
    async with harness(redis_url, f"sqlite:///{tmp_path}/w.db", **settings) as ready:
        ready.fake.add_worker(ASSISTANT)
        ready.sids[ROOM] = SID
        yield ready


async def a_meeting_with_its_assistant(h: Harness) -> float:
    """Alice joins, the app dispatches its assistant, which comes; Warden learns it at the join deadline.
    Returns when alice came."""
    start = h.clock.now
    await joins(h, "alice")
    h.fake.create_dispatch(ROOM, ASSISTANT)
    await h.run_for(30, SID)
    assert h.fake.agents_in(ROOM) != [] and (await h.whole(SID)).view(ASSISTANT) is not None
    return start


async def test_a_dispatch_made_30_s_in_and_never_served_is_re_dispatched_at_its_own_sla(h: Harness) -> None:
    start = await a_meeting_with_its_assistant(h)
    late = h.fake.create_dispatch(ROOM, NOTETAKER)  # 30 s in; no notetaker worker is registered
    await h.run_for(10, SID)
    assert (await h.whole(SID)).view(NOTETAKER) is None  # not yet listed
    await reconcile(h.ctx)  # 40 s in: the room's dispatches are listed
    notetaker = (await h.whole(SID)).view(NOTETAKER)
    assert notetaker is not None and notetaker.sources == ("dispatch",)
    assert notetaker.deadline is not None and notetaker.deadline.at == pytest.approx(
        start + 30 + 15, abs=0.01
    )
    assert h.fake.created == []
    await h.run_for(5.5, SID)  # its SLA, from its dispatch: 45 s in
    assert h.fake.created == [(ROOM, NOTETAKER)]  # the notetaker only: the assistant is there
    assert h.fake.live_dispatches(ROOM, NOTETAKER)[0].id != late.id  # the app's was replaced
    room = await h.whole(SID)
    assert room.view(ASSISTANT) is not None and room.view(ASSISTANT).phase is Phase.AGENT_ACTIVE  # type: ignore[union-attr]
    assert (len(room.view(NOTETAKER).redispatched), room.summary().agent) == (1, NOTETAKER)  # type: ignore[union-attr]


async def test_a_dispatch_made_30_s_in_and_served_is_left_alone_and_watched(h: Harness) -> None:
    await a_meeting_with_its_assistant(h)
    h.fake.add_worker(NOTETAKER)
    h.fake.create_dispatch(ROOM, NOTETAKER)  # 30 s in; its worker takes it, its agent comes at once
    await h.run_for(10, SID)
    await reconcile(h.ctx)  # 40 s in
    await h.run_for(60, SID)
    await reconcile(h.ctx)
    room = await h.whole(SID)
    notetaker = room.view(NOTETAKER)
    assert notetaker is not None and notetaker.phase in (Phase.AGENT_PRESENT, Phase.AGENT_ACTIVE)
    assert h.fake.created == [] and h.fake.copies(ROOM, NOTETAKER) == 1


async def test_a_room_expecting_no_agent_learns_a_dispatch_made_ten_minutes_in(
    tmp_path: Path, redis_url: str
) -> None:
    """No reconciliation reaches the room (a big deployment's batch): the slow look does."""
    db = f"sqlite:///{tmp_path}/w.db"
    async with harness(redis_url, db, warden_agent_name="", warden_discover_seconds=60) as h:
        h.sids[ROOM] = SID
        await joins(h, "alice")
        await joins(h, "bob")
        await h.run_for(20, SID)
        assert (await h.room(SID)).phase is Phase.NO_AGENT_EXPECTED  # LiveKit named none at the deadline
        looks = 0
        for _ in range(10 * 12):  # ten minutes of the cron's 5-s runs: one look a minute
            await h.pass_time(5)
            looks += (await discover(h.ctx))["looked"]
        assert 9 <= looks <= 11
        h.fake.create_dispatch(ROOM, NOTETAKER)  # never served
        for _ in range(12):  # looked at within the minute; its SLA from its dispatch is past by then
            await h.pass_time(5)
            await discover(h.ctx)
        await h.run_for(1, SID)
        assert h.fake.created == [(ROOM, NOTETAKER)]

"""Property (issue 23), on the faithful stand-in through the worker's jobs: whatever the agent's join
time, the server's job-listing lag and the webhooks' delays (late ones arriving after later ones, so
rooms are re-folded), Warden never keeps two copies of the agent together longer than `BOUND`, never
terminates a job before its connect grace is over, numbers no two deadlines of a room alike, and leaves
no room with its person waiting, the agent absent and nothing scheduled: in the end the agent is there,
once."""

from __future__ import annotations

import asyncio
import itertools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from tests.support.harness import AGENT, Harness, harness
from tests.support.helpers import person
from workers.core.recovery import CONNECT_GRACE, LISTING_GRACE
from workers.core.room import Phase
from workers.store.log_rows import ACTION_KIND
from workers.store.models import EVENTS

MAX_DELAY = 2.0  # a webhook's delay in arriving, at most
# Two copies: Warden hears of the second when its join arrives, and may wait for the listing to say
# which one a live dispatch serves (up to `LISTING_GRACE` after that dispatch was made).
BOUND = LISTING_GRACE + MAX_DELAY
_rooms = itertools.count()


async def deadline_numbers(h: Harness, sid: str) -> dict[int, set[tuple[str, float, str]]]:
    """Each deadline number Warden scheduled in the room, with the deadlines it named."""
    async with h.engine.connect() as connection:
        rows = await connection.execute(
            select(EVENTS.c.data).where(
                EVENTS.c.room_sid == sid, EVENTS.c.kind == ACTION_KIND, EVENTS.c.name == "ScheduleDeadline"
            )
        )
        numbers: dict[int, set[tuple[str, float, str]]] = {}
        for (data,) in rows:
            numbers.setdefault(data["attempt"], set()).add((data["reason"], data["at"], data["agent"]))
        return numbers


async def play(h: Harness, connects_after: float, lag: float, delays: list[float]) -> None:
    n = next(_rooms)
    room, sid = f"double-{n}", f"RM_double_{n}"
    h.fake.job_listing_lag = lag
    worker = h.fake.add_worker(AGENT, cold_start=connects_after, keeps_running=True)
    h.delays = list(delays)
    t0 = h.clock.now
    h.fake.join(room, "alice")
    h.fake.create_dispatch(room, AGENT)
    await h.send(
        "participant_joined", room=room, sid=sid, event_id=f"EV_{n}_alice", participant=person("alice")
    )
    await h.run_for(70, sid)
    spans = h.fake.doubled(room, AGENT)
    assert all(end - start <= BOUND for start, end in spans), spans
    terminated = [j for j in h.fake.jobs.values() if j.room == room and j.terminated_at is not None]
    for job in terminated:
        assert job.terminated_at - job.assigned_at >= CONNECT_GRACE - 0.2 - 1e-6, (job, t0)
    if 0.2 + connects_after < 9.8:  # an agent within 10 s of its dispatch: left alone, not replaced
        assert (terminated, h.fake.created[-1:]) == ([], []), h.fake.created
    numbers = await deadline_numbers(h, sid)
    assert all(len(named) == 1 for named in numbers.values()), numbers
    assert h.fake.copies(room, AGENT) == 1, h.fake.presence
    whole = await h.whole(sid)
    assert whole.summary().phase in (Phase.AGENT_PRESENT, Phase.AGENT_ACTIVE)
    h.fake.close_room(room)
    h.fake.workers.remove(worker)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    connects_after=st.floats(0.3, 16.0),
    lag=st.floats(0.1, 5.0),
    delays=st.lists(st.floats(0.0, MAX_DELAY), max_size=12),
    sla=st.sampled_from([2, 3, 4]),
)
def test_never_doubled_for_long_never_renumbered_never_left_waiting(
    tmp_path_factory: pytest.TempPathFactory,
    redis_url: str,
    connects_after: float,
    lag: float,
    delays: list[float],
    sla: int,
) -> None:
    async def run() -> None:
        db = f"sqlite:///{tmp_path_factory.mktemp('double')}/w.db"
        async with harness(redis_url, db, warden_join_sla_seconds=sla, warden_rejoin_sla_seconds=sla) as h:
            await play(h, connects_after, lag, delays)

    asyncio.run(run())

"""Issue 23's second half, on the faithful stand-in through one worker's jobs (in-process, on the
harness's clock): 300 rooms wait through an outage (no worker takes their dispatches), the deployment
comes back (a worker registers; each waiting room gets its fresh start, as the escalation gives it),
join, rejoin and active SLAs 2 s, the stand-in's webhooks arriving up to 2 s late and out of order
(rooms are re-folded). Every room has its agent again, once, within 45 s of the deployment's return;
no deadline number names two deadlines in a room; and no room is left with its person waiting, the
agent absent and nothing scheduled."""

from __future__ import annotations

import math
import random
from pathlib import Path

import pytest
from sqlalchemy import func, select

from tests.support.harness import AGENT, Harness, harness
from tests.support.helpers import person
from workers.core.room import Phase
from workers.jobs.rooms.jobs import fresh_start
from workers.store.log_rows import ACTION_KIND
from workers.store.models import EVENTS, ROOMS
from workers.store.queries import overdue_deadlines

N = 300
OUTAGE = 20.0  # seconds the rooms wait before the deployment is back
BACK_WITHIN = 45.0
MAX_STEPS = 20_000


def room_of(i: int) -> tuple[str, str]:
    return f"out-{i}", f"RM_out_{i}"


async def next_deadline(h: Harness) -> float:
    async with h.engine.connect() as connection:
        found = await connection.scalar(
            select(func.min(ROOMS.c.deadline_at)).where(ROOMS.c.phase != Phase.CLOSED.value)
        )
    return math.inf if found is None else float(found)


async def live_through(h: Harness, seconds: float) -> None:
    """`seconds` as one worker lives them, for every room: the stand-in's timers and (late) webhooks in
    order, and every deadline run the moment it falls due."""
    until = h.clock.now + seconds
    for _ in range(MAX_STEPS):
        due = await overdue_deadlines(h.engine, h.clock.now)
        if due:
            for sid, attempt in due:
                await h.queue.delete(f"arq:job:deadline:{sid}:{attempt}")
                await h.run_deadline(sid, attempt)
            continue
        if h.clock.now >= until:
            return
        timer = h.clock.next_due()
        wake = min(await next_deadline(h), until, math.inf if timer is None else timer, h.next_arrival())
        await h.pass_time(max(0.0, wake - h.clock.now))
    raise AssertionError(f"still busy after {MAX_STEPS} steps")


async def reused_numbers(h: Harness) -> dict[tuple[str, int], set[tuple[str, float, str]]]:
    """Deadline numbers that named more than one deadline in a room."""
    async with h.engine.connect() as connection:
        rows = await connection.execute(
            select(EVENTS.c.room_sid, EVENTS.c.data).where(
                EVENTS.c.kind == ACTION_KIND, EVENTS.c.name == "ScheduleDeadline"
            )
        )
        named: dict[tuple[str, int], set[tuple[str, float, str]]] = {}
        for sid, data in rows:
            named.setdefault((sid, data["attempt"]), set()).add((data["reason"], data["at"], data["agent"]))
    return {key: deadlines for key, deadlines in named.items() if len(deadlines) > 1}


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_after_a_300_room_outage_every_room_has_its_agent_again(
    tmp_path: Path, redis_url: str, seed: int
) -> None:
    rng = random.Random(seed)
    db = f"sqlite:///{tmp_path}/w.db"
    sla = {f"warden_{k}_sla_seconds": 2 for k in ("join", "rejoin", "active")}
    async with harness(redis_url, db, **sla) as h:
        h.delays = [rng.uniform(0.0, 2.0) for _ in range(20 * N)]
        for i in range(N):
            name, sid = room_of(i)
            h.fake.join(name, "alice")
            h.fake.create_dispatch(name, AGENT)  # the application's: no worker takes it (the outage)
            await h.send(
                "participant_joined",
                room=name,
                sid=sid,
                event_id=f"EV_{i}_alice",
                participant=person("alice"),
            )
        await live_through(h, OUTAGE)
        back = h.clock.now
        h.fake.add_worker(AGENT)  # the deployment is back: a warm worker whose agents publish at once
        for i in range(N):
            name, sid = room_of(i)
            await fresh_start(h.ctx, sid, name, "IN_outage", AGENT, 0.0)
        await live_through(h, BACK_WITHIN)
        missing = [room_of(i)[0] for i in range(N) if h.fake.copies(room_of(i)[0], AGENT) != 1]
        assert missing == [], (len(missing), missing[:10])
        assert await reused_numbers(h) == {}
        for i in range(N):
            name, sid = room_of(i)
            shown = (await h.whole(sid)).summary()
            assert shown.phase in (Phase.AGENT_PRESENT, Phase.AGENT_ACTIVE), (name, shown)
            assert not [s for s in h.fake.doubled(name, AGENT) if s[0] >= back], name

"""Property: a worker that dies anywhere between a room's commit and the delivery of what it decided
loses nothing and doubles nothing. Random event sequences over three rooms are played twice, once with
every delivery made at once, once with recording jobs' deliveries dropped (killed right after the
commit), cut short (killed before the delivered rows were cleared, so they are delivered again) or
failing (Redis or LiveKit unreachable); the sweep's outbox delivery runs between steps, as it would
every few seconds. Both runs must queue the same deadlines, create the same dispatches and make the
same escalation calls, and never leave two live dispatches for a room's agent."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from unittest import mock

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from redis.exceptions import ConnectionError as RedisConnectionError

from tests.support.harness import AGENT, Harness, harness
from tests.support.helpers import agent, person
from workers.core.room import Room
from workers.jobs.delivery import outbox as delivery
from workers.jobs.delivery.outbox import Delivered
from workers.jobs.rooms import recording
from workers.jobs.rooms.effects import Effects
from workers.jobs.runtime.context import context
from workers.store import outbox
from workers.store.outbox import Pending
from workers.store.writer import load_room

ROOMS = 3
VERBS = (
    "person joins",
    "person leaves",
    "agent joins",
    "agent leaves",
    "deadline fires",
    "livekit refuses",
    "time passes",
)
STEPS = st.lists(st.tuples(st.sampled_from(VERBS), st.integers(0, ROOMS - 1)), min_size=1, max_size=16)
# What happens to the n-th recording job's delivery (at once when the list is shorter).
FATES = st.lists(st.sampled_from(["delivered", "dropped", "cut short", "unreachable"]), max_size=24)
_runs = itertools.count()


@dataclass
class Fates:
    """Hands each recording job's delivery its fate, in order."""

    fates: Sequence[str]
    calls: int = 0
    struck: list[str] = field(default_factory=list)

    async def deliver(
        self, effects: Effects, delivered: Delivered, notices: Sequence[Pending], room: Room
    ) -> None:
        fate = self.fates[self.calls] if self.calls < len(self.fates) else "delivered"
        self.calls += 1
        if fate != "delivered":
            self.struck.append(fate)
        if fate == "dropped":  # killed right after the commit
            return
        if fate == "cut short":  # killed after sending the first notice, before it was marked delivered
            for notice in notices[:1]:
                await delivery.send(effects, notice, room)
            return
        if fate == "unreachable":  # every send fails as Redis (or LiveKit) would: left to the sweep
            with mock.patch.object(delivery, "send", _unreachable):
                await delivery.deliver(effects, delivered, notices, room)
            return
        await delivery.deliver(effects, delivered, notices, room)


async def _unreachable(effects: Effects, notice: Pending, room: Room, *, fold: bool = False) -> None:
    raise RedisConnectionError("Connection refused")


@dataclass(frozen=True)
class Seen:
    """What a run did to the world, by room number: comparable between runs."""

    created: list[int]
    timers: set[tuple[int, int]]
    escalated: list[tuple[int, str]]
    breaches: list[tuple[int, str]]
    recovered: list[int]


async def sweep(h: Harness) -> None:
    """The sweep's outbox delivery, once whatever was delivered at once has been cleared (as it is 0.2 s
    after delivery) and the grace is over; then the escalation jobs it queued."""
    worker = context(h.ctx)
    await worker.delivered.flush()
    h.advance(outbox.GRACE_SECONDS + 1)
    await delivery.deliver_overdue(worker.effects, worker.engine, worker.delivered)
    await worker.delivered.flush()
    await h.run_escalations()


async def send(h: Harness, run: int, event: str, **fields: Any) -> None:
    """A webhook with an id of this run's own (escalation jobs are named after it)."""
    await h.send(event, event_id=f"EV_ob{run}_{h._ids}", **fields)


async def play(h: Harness, steps: list[tuple[str, int]]) -> Seen:
    run = next(_runs)
    names = [f"ob{run}-{r}" for r in range(ROOMS)]
    sids = [f"RM_ob{run}_{r}" for r in range(ROOMS)]
    for step, r in steps:
        room, sid = names[r], sids[r]
        if step == "person joins":
            h.fake.join(room, "alice", at=int(h.clock.now))
            await send(h, run, "participant_joined", room=room, sid=sid, participant=person("alice"))
        elif step == "person leaves":
            h.fake.leave(room, "alice")
            await send(h, run, "participant_left", room=room, sid=sid, participant=person("alice"))
        elif step == "agent joins":
            h.fake.join(room, f"agent-{r}", agent_name=AGENT, at=int(h.clock.now))
            await send(
                h, run, "participant_joined", room=room, sid=sid, participant=agent(f"agent-{r}", AGENT)
            )
        elif step == "agent leaves":
            h.fake.leave(room, f"agent-{r}")
            await send(h, run, "participant_left", room=room, sid=sid, participant=agent(f"agent-{r}", AGENT))
        elif step == "deadline fires":
            known = await load_room(h.engine, sid)
            if known is not None and known.summary().deadline is not None:
                await h.fire(sid)
        elif step == "livekit refuses":
            h.fake.fail("CreateDispatch", 400)
        elif step == "time passes":
            h.advance(7)
        await sweep(h)
        for name in names:
            assert len(h.fake.live_dispatches(name, AGENT)) <= 1, (step, name, h.fake.created)
    await sweep(h)

    def number(name: str) -> int:
        return names.index(name)

    queued = [t.split(":") for t in await h.timers()]
    timers = {(sids.index(sid), int(attempt)) for _, sid, attempt in queued if sid in sids}
    return Seen(
        created=[number(room) for room, _ in h.fake.created],
        timers=timers,
        escalated=sorted((number(name), reason) for name, reason in h.incidents.failed),
        breaches=sorted((number(name), reason) for name, reason in h.incidents.breaches),
        recovered=sorted(number(name) for name in h.incidents.recovered),
    )


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=STEPS, fates=FATES, dispatch_on_start=st.booleans())
# The breach reported when the deadline's re-dispatch is decided, sent and then sent again by the sweep.
@example(
    steps=[("person joins", 0), ("deadline fires", 0)],
    fates=["delivered", "cut short"],
    dispatch_on_start=False,
)
def test_a_crash_between_commit_and_delivery_changes_no_effect(
    redis_url: str,
    tmp_path_factory: object,
    steps: list[tuple[str, int]],
    fates: list[str],
    dispatch_on_start: bool,
) -> None:
    async def run(fated: Fates | None) -> Seen:
        db = str(tmp_path_factory.mktemp("outbox") / "w.db")  # type: ignore[attr-defined]
        async with harness(
            redis_url,
            f"sqlite:///{db}",
            warden_max_redispatches=1,
            warden_dispatch_on_start=dispatch_on_start,
        ) as h:
            if fated is None:
                return await play(h, steps)
            with mock.patch.object(recording, "deliver", fated.deliver):
                return await play(h, steps)

    calm = asyncio.run(run(None))
    crashed = asyncio.run(run(Fates(fates)))
    assert crashed == calm

"""Service levels through the worker's jobs (issue 29): each room counted once in
`warden_sli_events_total` and in `sli_outcomes`, when its fate is known; a webhook delivered again, or
its job run again, counts nothing more."""

from __future__ import annotations

from prometheus_client import REGISTRY
from sqlalchemy import select

from tests.support.events import parse
from tests.support.helpers import body, person
from tests.support.jobs_world import AGENT, World
from workers.core.events import to_dict
from workers.jobs.rooms.jobs import apply_webhook
from workers.store.models import SLI_OUTCOMES

LEVELS = [(sli, outcome) for sli in ("on_time", "served") for outcome in ("good", "bad")]


def counts() -> dict[tuple[str, str], float]:
    return {
        (sli, outcome): REGISTRY.get_sample_value(
            "warden_sli_events_total", {"agent": AGENT, "sli": sli, "outcome": outcome}
        )
        or 0.0
        for sli, outcome in LEVELS
    }


def grown(before: dict[tuple[str, str], float]) -> dict[tuple[str, str], float]:
    now = counts()
    return {key: now[key] - before[key] for key in LEVELS}


async def rows(world: World) -> list[tuple[str, bool, bool, str]]:
    async with world.engine.connect() as connection:
        found = await connection.execute(
            select(
                SLI_OUTCOMES.c.room_name, SLI_OUTCOMES.c.on_time, SLI_OUTCOMES.c.served, SLI_OUTCOMES.c.how
            )
        )
        return sorted((r.room_name, r.on_time, r.served, r.how) for r in found)


async def test_each_room_counts_once_when_its_fate_is_known(world: World) -> None:
    before = counts()
    await world.person_joins("on-time")
    await world.wait(5)
    await world.agent_joins("on-time", "agent-1")  # in its SLA (15 s)
    await world.person_joins("late")
    await world.wait(15 + 10)  # the SLA ran out: Warden re-dispatched, the agent came
    await world.person_joins("early-leaver")
    await world.wait(3)
    await world.person_leaves("early-leaver")  # left before the SLA ran out
    await world.room_ends("early-leaver")
    world.agent_down()
    await world.person_joins("never")
    await world.wait(60)
    assert await rows(world) == [("late", False, True, "redispatched"), ("on-time", True, True, "on_time")]
    await world.room_ends("never")
    assert await rows(world) == [
        ("late", False, True, "redispatched"),
        ("never", False, False, "never"),
        ("on-time", True, True, "on_time"),
    ]
    expected = {("on_time", "good"): 1, ("on_time", "bad"): 2, ("served", "good"): 2, ("served", "bad"): 1}
    assert grown(before) == expected

    # LiveKit delivers the last webhooks again, and ARQ runs their jobs again (their results forgotten)
    finished = parse(
        body("room_finished", id="EV_again", created_at=int(world.clock.now), room="never", sid="RM_never")
    )
    joined = parse(
        body(
            "participant_joined",
            id="EV_again_2",
            created_at=int(world.clock.now),
            room="on-time",
            sid="RM_on-time",
            participant=person("bob"),
        )
    )
    for event in (finished, finished, joined, joined):
        await apply_webhook(world.ctx, to_dict(event), world.clock.now)
    await world.room_ends("late")
    await world.room_ends("on-time")
    assert grown(before) == expected
    assert len(await rows(world)) == 3

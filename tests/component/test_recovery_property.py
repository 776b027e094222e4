"""Property: whatever order a room's events come in, Warden never leaves two live dispatches for its agent."""

from __future__ import annotations

import asyncio
import itertools

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from livekit.api import CreateAgentDispatchRequest

from tests.support.harness import AGENT, Harness, harness
from tests.support.helpers import agent, person

STEPS = st.lists(
    st.sampled_from(
        [
            "alice joins",
            "bob joins",
            "alice leaves",
            "bob leaves",
            "agent joins",
            "agent leaves",
            "agent joins unannounced",
            "deadline fires",
            "livekit 503 once",
            "webhook repeated",
            "time passes",
        ]
    ),
    min_size=1,
    max_size=14,
)
_rooms = itertools.count()


async def play(h: Harness, steps: list[str]) -> None:
    n = next(_rooms)
    room, sid = f"prop-{n}", f"RM_prop_{n}"
    h.fake.start_room(room)
    h.fake._CreateDispatch(
        CreateAgentDispatchRequest(agent_name=AGENT, room=room)
    )  # the app's own, before Warden
    h.fake.created.clear()
    last: tuple[str, dict[str, object]] | None = None
    for step in steps:
        who, _, verb = step.partition(" ")
        if verb in ("joins", "leaves", "joins unannounced"):
            is_agent = who == "agent"
            identity = "agent-1" if is_agent else who
            if verb.startswith("joins"):
                h.fake.join(room, identity, agent_name=AGENT if is_agent else None)
            else:
                h.fake.leave(room, identity)
            if verb != "joins unannounced":
                event = "participant_joined" if verb == "joins" else "participant_left"
                fields = {"participant": agent(identity, AGENT) if is_agent else person(identity)}
                last = (event, fields)
                await h.send(event, room=room, sid=sid, event_id=f"EV_{n}_{h._ids}", **fields)
        elif step == "deadline fires":
            current = await h.room(sid) if await _known(h, sid) else None
            if current is not None and current.deadline is not None:
                await h.fire(sid)
        elif step == "livekit 503 once":
            h.fake.fail_after("CreateDispatch", 503)
        elif step == "webhook repeated" and last is not None:
            await h.send(last[0], room=room, sid=sid, event_id=f"EV_{n}_{h._ids}", **last[1])
        elif step == "time passes":
            h.advance(7)
        assert len(h.fake.live_dispatches(room, AGENT)) <= 1, (step, h.fake.created)


async def _known(h: Harness, sid: str) -> bool:
    from workers.store.writer import load_room

    return await load_room(h.engine, sid) is not None


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=STEPS)
def test_any_interleaving_leaves_at_most_one_live_dispatch(
    redis_url: str, tmp_path_factory: object, steps: list[str]
) -> None:
    async def run() -> None:
        async with harness(redis_url, f"sqlite:///{_db(tmp_path_factory)}") as h:
            await play(h, steps)

    asyncio.run(run())


def _db(factory: object) -> str:
    return str(factory.mktemp("prop") / "w.db")  # type: ignore[attr-defined]

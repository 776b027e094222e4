"""Property, with several agents per room and no agent configured: whatever order a room's events come
in, Warden never leaves two live dispatches for one agent name, and never dispatches an agent the room
does not expect."""

from __future__ import annotations

import asyncio
import itertools

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.harness import Harness, harness
from tests.support.helpers import agent, person
from workers.core.room import Room
from workers.store.writer import load_room

NAMES = ("assistant", "notetaker")
STEPS = st.lists(
    st.sampled_from(
        [
            "alice joins",
            "alice leaves",
            "bob joins",
            "assistant joins",
            "assistant leaves",
            "assistant joins unannounced",
            "notetaker joins",
            "notetaker leaves",
            "notetaker joins unannounced",
            "deadlines fire",
            "livekit 503 once",
            "webhook repeated",
            "time passes",
        ]
    ),
    min_size=1,
    max_size=16,
)
_rooms = itertools.count()


async def play(h: Harness, steps: list[str]) -> None:
    n = next(_rooms)
    room, sid = f"agents-{n}", f"RM_agents_{n}"
    for name in NAMES:  # the app's own dispatches: the room expects both agents
        h.fake.create_dispatch(room, name, metadata=f'{{"for":"{name}"}}')
    last: tuple[str, dict[str, object]] | None = None
    for step in steps:
        who, _, verb = step.partition(" ")
        if verb in ("joins", "leaves", "joins unannounced"):
            is_agent = who in NAMES
            identity = f"agent-{who}" if is_agent else who
            if verb.startswith("joins"):
                h.fake.join(room, identity, agent_name=who if is_agent else None)
            else:
                h.fake.leave(room, identity)
            if verb != "joins unannounced":
                event = "participant_joined" if verb == "joins" else "participant_left"
                fields = {"participant": agent(identity, who) if is_agent else person(identity)}
                last = (event, fields)
                await h.send(event, room=room, sid=sid, event_id=f"EV_{n}_{h._ids}", **fields)
        elif step == "deadlines fire":
            current = await load_room(h.engine, sid)
            for attempt in _due(current):
                h.clock.now = max(h.clock.now, attempt[1])
                await h.run_deadline(sid, attempt[0])
        elif step == "livekit 503 once":
            h.fake.fail_after("CreateDispatch", 503)
        elif step == "webhook repeated" and last is not None:
            await h.send(last[0], room=room, sid=sid, event_id=f"EV_{n}_{h._ids}", **last[1])
        elif step == "time passes":
            h.advance(7)
        for name in NAMES:
            assert len(h.fake.live_dispatches(room, name)) <= 1, (step, name, h.fake.created)
        assert {agent_name for r, agent_name in h.fake.created if r == room} <= set(NAMES)


def _due(room: Room | None) -> list[tuple[int, float]]:
    if room is None:
        return []
    return [(v.deadline.attempt, v.deadline.at) for v in room.watchers() if v.deadline is not None]


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=STEPS)
def test_any_interleaving_leaves_at_most_one_live_dispatch_per_agent(
    redis_url: str, tmp_path_factory: object, steps: list[str]
) -> None:
    async def run() -> None:
        db = f"sqlite:///{tmp_path_factory.mktemp('agents') / 'w.db'}"  # type: ignore[attr-defined]
        async with harness(redis_url, db, warden_agent_name="") as h:
            await play(h, steps)

    asyncio.run(run())

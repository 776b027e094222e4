"""A LiveKit (the fake) and the webhooks it sends to a Warden started from its Procfile: the e2e world."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
from livekit.protocol.agent_dispatch import AgentDispatch

from devtools.simulator.livekit import FakeLiveKit, room_sid, sid_for
from tests.support.helpers import agent, body, person, sign
from tests.support.processes import Warden
from tests.support.settings import KEY, SECRET

AGENT = "notetaker"


@dataclass
class World:
    """LiveKit (the fake) and the webhooks it sends to a running Warden."""

    fake: FakeLiveKit
    warden: Warden
    client: httpx.AsyncClient
    arrive_on: dict[str, int] = field(default_factory=dict)  # room -> the dispatch its agent answers
    publish: bool = True
    tasks: set[asyncio.Task[None]] = field(default_factory=set)
    ids: int = 0

    async def webhook(self, event: str, room: str, **fields: Any) -> None:
        self.ids += 1
        raw = body(
            event,
            id=sid_for("EV_", f"{room}_{self.ids}"),
            created_at=int(time.time()),
            room=room,
            sid=room_sid(room),
            **fields,
        )
        response = await self.client.post(
            f"{self.warden.url}/webhook", content=raw, headers={"Authorization": sign(raw, KEY, SECRET)}
        )
        assert response.status_code == 200, response.text

    async def person_joins(self, room: str, who: str = "alice") -> None:
        self.fake.join(room, who)
        await self.webhook("participant_joined", room, participant=person(who))

    async def person_leaves(self, room: str, who: str = "alice") -> None:
        self.fake.leave(room, who)
        await self.webhook("participant_left", room, participant=person(who))

    async def agent_joins(
        self, room: str, who: str, *, publish: bool | None = None, dispatch_id: str = ""
    ) -> None:
        self.fake.join(room, who, agent_name=AGENT, dispatch_id=dispatch_id)
        await self.webhook("participant_joined", room, participant=agent(who, AGENT))
        if self.publish if publish is None else publish:
            await self.webhook(
                "track_published",
                room,
                participant={"sid": f"PA_{who}", "identity": who},
                track={"sid": f"TR_{who}"},
            )

    async def agent_leaves(self, room: str, who: str) -> None:
        self.fake.leave(room, who)
        await self.webhook("participant_left", room, participant=agent(who, AGENT))

    def on_dispatch(self, dispatch: AgentDispatch) -> None:
        """An agent answers the n-th dispatch of its room, as scripted in `arrive_on`."""
        count = sum(1 for room, _ in self.fake.created if room == dispatch.room)
        if self.arrive_on.get(dispatch.room) == count:
            joins = self.agent_joins(dispatch.room, f"agent-{count}", dispatch_id=dispatch.id)
            task = asyncio.get_running_loop().create_task(joins)
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    async def room(self, name: str) -> dict[str, Any]:
        return (await self.client.get(f"{self.warden.url}/api/rooms/{name}")).json()

    def created(self, room: str) -> int:
        return sum(1 for r, _ in self.fake.created if r == room)


def settled(state: str) -> Callable[[dict[str, Any]], bool]:
    """The room is in `state` with no deadline pending and nothing under way."""

    def check(room: dict[str, Any]) -> bool:
        recovery = room.get("recovery") or {}
        return (
            room.get("state") == state
            and recovery.get("state") == "none"
            and recovery.get("deadline") is None
        )

    return check

"""A LiveKit (the fake) and the webhooks it sends to a Warden started from its Procfile: the e2e world.

What a test does (a person joins, an agent leaves) it announces with the webhooks the stand-in returns for
it; what the stand-in does itself (an agent its workers bring, a participant it removes or times out, a
room `CreateDispatch` re-made) it announces through `announce`, in order, as LiveKit would."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from livekit.protocol.agent_dispatch import AgentDispatch

from devtools.simulator.deployments import Deployment
from devtools.simulator.livekit import FakeLiveKit, Webhook, Worker, room_sid, sid_for
from devtools.simulator.scenarios import cold_start, sleepy, stuck_initializing
from devtools.simulator.serving import serve
from devtools.simulator.webhooks import InOrder, deliver
from tests.support.helpers import body, sign
from tests.support.processes import Warden, run_warden
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
    announce: InOrder = field(init=False)

    def __post_init__(self) -> None:
        self.announce = InOrder(self.webhook)
        self.fake.on_webhook = self.announce

    async def webhook(self, event: str, room: str, **fields: Any) -> None:
        """Sign and deliver one webhook as livekit-server does (`deliver`, with its retries): 200."""
        self.ids += 1
        raw = body(
            event,
            id=sid_for("EV_", f"{room}_{self.ids}"),
            created_at=int(time.time()),
            room=room,
            sid=room_sid(room),
            **fields,
        )
        url, headers = f"{self.warden.url}/webhook", {"Authorization": sign(raw, KEY, SECRET)}
        response = await deliver(self.client, url, raw, headers)
        assert response.status_code == 200, response.text

    async def tell(self, room: str, webhooks: list[Webhook]) -> None:
        """Send the webhooks the stand-in made of what the test did in `room`, in order."""
        for event, fields in webhooks:
            await self.webhook(event, room, **fields)

    async def person_joins(self, room: str, who: str = "alice") -> None:
        await self.tell(room, self.fake.join(room, who))

    async def person_leaves(self, room: str, who: str = "alice") -> None:
        await self.tell(room, self.fake.leave(room, who))

    async def agent_joins(
        self, room: str, who: str, *, publish: bool | None = None, dispatch_id: str = "", name: str = AGENT
    ) -> None:
        await self.tell(room, self.fake.join(room, who, agent_name=name, dispatch_id=dispatch_id))
        if self.publish if publish is None else publish:
            await self.tell(room, self.fake.publish(room, who))

    async def agent_leaves(self, room: str, who: str) -> None:
        await self.tell(room, self.fake.leave(room, who))

    def cold_start(self, agent_name: str = AGENT) -> Worker:
        """Issue 23's slow agent from now on: its worker accepts a job in 0.2 s, the agent connects 4.5 s
        later, and LiveKit lists the job 5 s after the accept (`devtools.simulator.scenarios`)."""
        return cold_start(self.fake, agent_name)

    def sleepy(self, agent_name: str = AGENT, *, quiet: float) -> Deployment:
        """Issue 25's dormant deployment: `agent_name` gets a worker and a deployment (Cloud agent
        `scenarios.SLEEPY_AGENT_ID`) that falls asleep after `quiet` seconds without a dispatch and
        answers none until restarted (`devtools.simulator.scenarios`)."""
        return sleepy(self.fake, agent_name, quiet=quiet)

    def stuck_initializing(self, agent_name: str = AGENT) -> Worker:
        """Issue 26's agent that never finishes starting: `agent_name`'s worker brings a first agent whose
        `lk.agent.state` stays `initializing`, then agents that start and listen (`scenarios`)."""
        return stuck_initializing(self.fake, agent_name)

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


@contextlib.asynccontextmanager
async def warden_world(
    tmp_path: Path, redis_url: str, fake: FakeLiveKit, *, answer: bool = True, **env: str
) -> AsyncIterator[World]:
    """Warden from its Procfile (web and worker processes) on the stand-in LiveKit `fake` served on
    loopback, Redis at `redis_url` and a SQLite file in `tmp_path`, expecting `AGENT`; `env`: the other
    variables ("{livekit}" in a value: the stand-in's URL). `answer`: the agent answers each dispatch
    (`World.on_dispatch`)."""
    async with serve(fake.app) as livekit_url, httpx.AsyncClient() as client:
        settings = {
            "REDIS_URL": redis_url,
            "DATABASE_URL": f"sqlite:///{tmp_path}/w.db",
            "LIVEKIT_URL": livekit_url,
            "WARDEN_AGENT_NAME": AGENT,
            **{name: value.replace("{livekit}", livekit_url) for name, value in env.items()},
        }
        with run_warden(tmp_path, **settings) as warden:
            world = World(fake, warden, client)
            if answer:
                fake.on_dispatch = world.on_dispatch
            yield world

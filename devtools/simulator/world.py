"""A simulated LiveKit deployment: rooms where people meet and agents come, fail to come, stall or leave,
sent to Warden as signed webhooks, with the stand-in LiveKit (`livekit.FakeLiveKit`) answering Warden's
API calls. `warden simulate` and `make run`'s demo mode drive it; the summary compares what was
injected with what Warden did.

Each room: `room_started`, a person joins (in a share of rooms, `sip`, a phone caller: kind SIP, the room
named after the number as a SIP dispatch rule names it), the application dispatches the agent with its
metadata (and, in a share of rooms, `second`, a second agent beside it, e.g. a notetaker), the meeting
lasts a while, the person leaves, `room_finished`. What happens to the agent is the room's *fate*:
- ok: the agent joins within a second or two and publishes a track;
- never_joins: the first dispatch is accepted and nobody comes (Warden's re-dispatch is answered);
- leaves: the first agent leaves mid-meeting while the person stays (the next one stays);
- stalls: the first agent joins and never publishes (Warden needs `WARDEN_ACTIVE_SLA_SECONDS` to see it;
  it evicts the agent, which the stand-in reports as `participant_left`, and re-dispatches);
- stuck: the first agent joins and publishes, and its `lk.agent.state` stays `initializing` (Warden
  evicts it after `WARDEN_STUCK_INITIALIZING_SECONDS` and re-dispatches); every other agent publishes
  its state as livekit-agents does, `initializing` then `listening` (`agent_states.py`);
- never_comes: no agent comes however often it is dispatched (Warden's re-dispatches are spent: with a
  fallback agent configured the person gets it; a phone caller is transferred to people, and the stand-in
  hangs up the call as livekit/sip does, `sip.py`);
and during an outage (`outage:START+LENGTH`, seconds into the run; `Outage.every` repeats it) no dispatch
is answered until the outage ends or Warden restarts the Cloud agent (`RestartAgent`). A quiet spell
(`quiet:START+LENGTH`) starts no room; while the agent's workers are full (`full:START+LENGTH`) each
job of it is refused for want of capacity (JSR_NO_CAPACITY) and nobody comes; with `sleepy:SECONDS` the
agent's deployment falls asleep after that long without a dispatch and answers none until restarted
(`deployments.py`): a quiet night that only Warden's canaries (rooms it makes with CreateRoom, which the
stand-in serves as any room) can catch. The second agent has a fate of its own (never_joins with the same
share, else ok), so that a room where the first agent came and the second did not shows Warden
re-dispatching the second only. A fallback agent (`fallback_agent`, e.g. `apology`, issue 27) runs on
other workers: the outage, a sleep or full workers do not touch it; it joins whenever Warden dispatches
it, and leaves when Warden removes it (once the expected agent came after all) or the room ends.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

import httpx
from livekit.protocol.agent_dispatch import AgentDispatch

from devtools.simulator.agent_states import HEALTHY, STUCK_INITIALIZING
from devtools.simulator.livekit import FakeLiveKit, Webhook, room_sid, sid_for
from devtools.simulator.plan import FATES, FailurePlan, Outage, parse_failures
from devtools.simulator.webhooks import InOrder, body, deliver
from service.cli.signing import sign
from workers.core.personal import mask_phone

__all__ = ["FATES", "FailurePlan", "Outage", "Report", "Simulation", "parse_failures"]

WEBHOOK_BACKOFF = (0.5, 1.0)  # three tries: LiveKit's five would hold a scripted run up to 15 s


@dataclass
class Report:
    """What was injected, and what Warden did about it (as the stand-in LiveKit saw it)."""

    rooms: int = 0
    injected: Counter[str] = field(default_factory=Counter)  # rooms by fate
    served: Counter[str] = field(default_factory=Counter)  # rooms by fate with a working agent at the end
    unserved_rooms: list[str] = field(default_factory=list)
    second_rooms: int = 0  # rooms that expect a second agent
    second_served: int = 0  # of which had it at the end
    sip_rooms: int = 0  # rooms whose person was a phone caller
    outage_rooms: int = 0  # rooms whose first dispatch fell in the outage
    outage_served: int = 0
    warden_dispatches: int = 0
    evictions: int = 0
    restarts: int = 0
    swallowed: int = 0  # dispatches a sleeping deployment took and never answered
    refused: int = 0  # dispatches whose job a full deployment refused (JSR_NO_CAPACITY)
    fallback_agents: int = 0  # fallback agents that joined (Warden dispatched them)
    fallback_removed: int = 0  # of which Warden removed once the expected agent came
    transfers: int = 0  # phone callers transferred to people
    notices: int = 0  # data messages Warden sent to rooms (`warden.status`)
    webhooks: int = 0
    webhook_errors: int = 0

    @property
    def unserved(self) -> int:
        return self.rooms - sum(self.served.values())


@dataclass
class Simulation:
    fake: FakeLiveKit
    client: httpx.AsyncClient  # posts to Warden
    webhook_url: str
    agent_name: str
    plan: FailurePlan
    rng: random.Random = field(default_factory=random.Random)
    meeting: tuple[float, float] = (20.0, 40.0)  # seconds a meeting lasts
    agent_delay: tuple[float, float] = (0.3, 1.5)  # seconds an answered dispatch takes to bring an agent
    prefix: str = field(default_factory=lambda: f"sim-{int(time.time()) % 100000}")
    second_agent: str = ""  # a second agent the application dispatches in a share of rooms
    second: float = 0.0  # that share
    sip: float = 0.0  # the share of rooms that are phone calls
    fallback_agent: str = ""  # the agent Warden dispatches when the expected one cannot be brought back
    report: Report = field(default_factory=Report)
    on_room_done: Callable[[], None] = lambda: None
    say: Callable[[str], None] = lambda _: None  # told what befalls the deployment (asleep, restarted)
    _asleep_told: int = 0  # the sleeps already told
    _started: float = field(default_factory=time.monotonic)
    _restarted: set[int] = field(default_factory=set)  # the outages a restart has ended
    _dropped: set[int] = field(default_factory=set)  # the outages that have left a dispatch unanswered
    fates: dict[str, str] = field(default_factory=dict)  # room -> its injected fate
    _dispatched: Counter[str] = field(default_factory=Counter)  # dispatches seen per room
    _answered: Counter[str] = field(default_factory=Counter)  # agents sent per room
    _working: dict[str, str] = field(default_factory=dict)  # room -> identity of a publishing agent
    _second_fates: dict[str, str] = field(default_factory=dict)  # room -> the second agent's fate
    _second_working: dict[str, str] = field(default_factory=dict)
    _fallbacks: set[tuple[str, str]] = field(default_factory=set)  # (room, identity) of fallback agents
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)
    _ids: int = 0

    def __post_init__(self) -> None:
        self.fake.on_dispatch = self._on_dispatch
        self.fake.on_restart = self._on_restart
        self.fake.on_webhook = InOrder(self.webhook)  # what LiveKit does itself: evictions, a room re-made
        self.fake.on_remove = self._on_remove
        if self.plan.sleepy is not None:  # the agent's deployment falls asleep after a quiet spell
            self.fake.deployment(self.agent_name, sleep_after=self.plan.sleepy, sleeps=self.plan.sleeps)
        if self.plan.full is not None:  # the agent's workers are full for a while: jobs refused
            self.fake.full_now = self.full_now

    async def run(self, rooms: int, *, over: float) -> Report:
        """`rooms` rooms arriving evenly over `over` seconds; returns when every meeting has ended."""
        self._started = time.monotonic()
        gap = over / max(1, rooms)
        meetings = []
        for i in range(rooms):
            while self.quiet_now():
                await asyncio.sleep(0.5)
            meetings.append(asyncio.create_task(self.room(i)))
            await asyncio.sleep(gap)
        await asyncio.gather(*meetings)
        return self.finish()

    async def forever(self, *, every: float) -> None:
        """A room every `every` seconds until cancelled (demo mode)."""
        i = 0
        while True:
            if not self.quiet_now():  # (a quiet spell: no new room; canaries alone dispatch the agent)
                self._spawn(self.room(i))
                i += 1
            await asyncio.sleep(every * self.rng.uniform(0.5, 1.5))

    def finish(self) -> Report:
        self.report.warden_dispatches = len(self.fake.created)
        self.report.evictions = sum(1 for method, _ in self.fake.calls if method == "RemoveParticipant")
        self.report.restarts = len(self.fake.restarts)
        self.report.swallowed = len(self.fake.swallowed_ids)
        self.report.refused = len(self.fake.refused_ids)
        self.report.transfers = len(self.fake.transferred())
        self.report.notices = sum(len(sent) for sent in self.fake.messages.values())
        return self.report

    def quiet_now(self) -> bool:
        quiet = self.plan.quiet
        return quiet is not None and quiet.index(time.monotonic() - self._started) is not None

    def full_now(self, agent_name: str) -> bool:
        """Are `agent_name`'s workers full now (`full:START+LENGTH`)?"""
        full = self.plan.full
        elapsed = time.monotonic() - self._started
        return agent_name == self.agent_name and full is not None and full.index(elapsed) is not None

    def outage_now(self) -> bool:
        index = self._outage()
        return index is not None and index not in self._restarted

    def _outage(self) -> int | None:
        outage = self.plan.outage
        return None if outage is None else outage.index(time.monotonic() - self._started)

    async def room(self, i: int) -> None:
        # (no draw without phone calls: a seeded run draws the same fates as before they existed)
        number = f"+1555010{i % 10000:04d}" if self.sip and self.rng.random() < self.sip else ""
        name = f"{self.prefix}-call-_{number}_{i:04d}" if number else f"{self.prefix}-{i:04d}"
        fate = self.plan.fate(self.rng)
        self.fates[name] = fate
        self.report.rooms += 1
        self.report.injected[fate] += 1
        two = bool(self.second_agent) and self.rng.random() < self.second
        if two:
            never = self.rng.random() < self.plan.never_joins
            self._second_fates[name] = "never_joins" if never else "ok"
            self.report.second_rooms += 1
        await self.tell(name, self.fake.start_room(name))
        await asyncio.sleep(self.rng.uniform(0.1, 0.8))
        who = f"sip_{number}" if number else "alice"
        self.report.sip_rooms += bool(number)
        await self.tell(name, self.fake.join(name, who, caller=number))
        outage_room = self.outage_now()
        self.report.outage_rooms += outage_room
        self.fake.create_dispatch(name, self.agent_name, metadata=f'{{"room":"{i}"}}')
        if two:
            self.fake.create_dispatch(name, self.second_agent, metadata=f'{{"notes_for":"{i}"}}')
        await asyncio.sleep(self.rng.uniform(*self.meeting))
        present = self.fake.rooms.get(name, {})
        served = name in self._working and self._working[name] in present
        if served:
            self.report.served[fate] += 1
            self.report.outage_served += outage_room
        else:
            self.report.unserved_rooms.append(name)
        self.report.second_served += two and self._second_working.get(name, "") in present
        await self.tell(name, self.fake.leave(name, who))
        await self.tell(name, self.fake.close_room(name))  # an agent still there leaves with it
        self._working.pop(name, None)
        self._second_working.pop(name, None)
        self.on_room_done()

    def _on_dispatch(self, dispatch: AgentDispatch) -> None:
        room = dispatch.room
        if self.fallback_agent and dispatch.agent_name == self.fallback_agent:
            self._spawn(self._fallback(room, f"agent-{dispatch.id}", dispatch.id))
            return
        if dispatch.agent_name != self.agent_name:
            self._on_second_dispatch(dispatch)
            return
        self._dispatched[room] += 1
        if self.fake.refused(dispatch.id):
            return  # refused for want of capacity: nobody comes
        if self.fake.swallowed(dispatch.id):
            self._tell_asleep(dispatch)
            return
        if room not in self.fake.rooms or self._dropped_in_outage():
            return
        fate = self.fates.get(room, "ok")
        if (fate == "never_joins" and self._dispatched[room] == 1) or fate == "never_comes":
            return  # accepted, and nobody comes (never_comes: for no dispatch)
        first = self._answered[room] == 0
        self._answered[room] += 1
        behaviour = fate if first and fate in ("leaves", "stalls", "stuck") else "ok"
        self._spawn(self._agent(room, f"agent-{dispatch.id}", behaviour, dispatch_id=dispatch.id))

    def _on_second_dispatch(self, dispatch: AgentDispatch) -> None:
        """The second agent's workers: a fate of their own, the same outage (one fleet)."""
        room, name = dispatch.room, dispatch.agent_name
        self._dispatched[f"{room}|{name}"] += 1
        if room not in self.fake.rooms or self.fake.swallowed(dispatch.id) or self._dropped_in_outage():
            return
        if self._second_fates.get(room) == "never_joins" and self._dispatched[f"{room}|{name}"] == 1:
            return
        self._spawn(self._agent(room, f"agent-{dispatch.id}", "ok", name, dispatch_id=dispatch.id))

    async def _agent(
        self, room: str, identity: str, behaviour: str, name: str = "", *, dispatch_id: str = ""
    ) -> None:
        name = name or self.agent_name
        await asyncio.sleep(self.rng.uniform(*self.agent_delay))
        if room not in self.fake.rooms:
            return
        await self.tell(room, self.fake.join(room, identity, agent_name=name, dispatch_id=dispatch_id))
        if behaviour == "stalls":
            return
        if behaviour == "stuck":
            self.fake.play_states(room, identity, STUCK_INITIALIZING)
            await self.tell(room, self.fake.publish(room, identity))
            return
        self.fake.play_states(room, identity, HEALTHY)
        if name == self.agent_name:
            self._working[room] = identity
        else:
            self._second_working[room] = identity
        await self.tell(room, self.fake.publish(room, identity))
        if behaviour == "leaves":
            await asyncio.sleep(self.rng.uniform(2.0, 5.0))
            await self.tell(room, self.fake.leave(room, identity))

    async def _fallback(self, room: str, identity: str, dispatch_id: str) -> None:
        """The fallback agent, on workers of its own: it comes whatever befalls the expected agent's."""
        await asyncio.sleep(self.rng.uniform(*self.agent_delay))
        if room not in self.fake.rooms:
            return
        name = self.fallback_agent
        await self.tell(room, self.fake.join(room, identity, agent_name=name, dispatch_id=dispatch_id))
        self.fake.play_states(room, identity, HEALTHY)
        self._fallbacks.add((room, identity))
        self.report.fallback_agents += 1
        self.say(f"the fallback agent {name} joined {mask_phone(room)}")
        await self.tell(room, self.fake.publish(room, identity))

    def _on_remove(self, room: str, identity: str) -> None:
        if (room, identity) in self._fallbacks:
            self.report.fallback_removed += 1
            self.say(f"Warden removed the fallback agent from {mask_phone(room)}: its agent came")

    def _dropped_in_outage(self) -> bool:
        """A dispatch now goes unanswered (the outage is on): noted, so that a restart ends it."""
        index = self._outage()
        if index is None or index in self._restarted:
            return False
        self._dropped.add(index)
        return True

    def _tell_asleep(self, dispatch: AgentDispatch) -> None:
        deployment = self.fake.deployments[dispatch.agent_name]
        if self._asleep_told <= len(deployment.wakes):  # the first dispatch this sleep swallowed
            self._asleep_told = len(deployment.wakes) + 1
            self.say(
                f"{dispatch.agent_name}'s deployment fell asleep after {deployment.sleep_after:g} s "
                f"without a dispatch: {dispatch.id} in {dispatch.room} is not answered (nor any until "
                "it is restarted)"
            )

    def _on_restart(self, agent_id: str) -> None:
        self.say(f"RestartAgent {agent_id}: the deployment is up; new dispatches are answered")
        index = self._outage()
        # A deployment restarted during the outage answers dispatches again: the restart that the outage
        # brought about, not one of an earlier incident that lands as the outage begins.
        if index is not None and index in self._dropped:
            self._restarted.add(index)

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def tell(self, room: str, webhooks: list[Webhook]) -> None:
        """Send the webhooks LiveKit makes of what happened in `room`, in order."""
        for event, fields in webhooks:
            await self.webhook(event, room, **fields)

    async def webhook(self, event: str, room: str, **fields: Any) -> None:
        """Sign and post one webhook as livekit-server does, retrying a failed delivery."""
        self._ids += 1
        raw = body(
            event,
            id=sid_for("EV_", f"{room}_{self._ids}"),
            created_at=int(time.time()),
            room=room,
            sid=room_sid(room),
            **fields,
        )
        headers = {
            "Authorization": sign(raw, self.fake.key, self.fake.secret),
            "Content-Type": "application/webhook+json",
        }
        self.report.webhooks += 1
        try:
            answer = await deliver(self.client, self.webhook_url, raw, headers, backoff=WEBHOOK_BACKOFF)
        except httpx.TransportError:
            answer = None
        if answer is None or answer.status_code != 200:
            self.report.webhook_errors += 1

"""In-memory stand-ins for what the worker talks to, for the jobs tier: objects meeting the adapters'
protocols (`workers.adapters.livekit.Presence` and `Dispatcher`, `workers.adapters.cloud.Cloud`,
`workers.escalation.policy.Restarter` and `Alerter`, `workers.escalation.alert_routes.EventRoute`), with
no wire. Each keeps the world as a test
arranges it and records what Warden did to it as domain facts:
`assert livekit.dispatched == [("call-42", "notetaker")]`.

What they answer is what the real adapters answer (LiveKit's behaviour as `LiveKitRooms` presents it: a
room LiveKit does not have is `(False, (), ())` to `observe` and `NOT_FOUND` to `redispatch`; a live
agent of the name keeps its dispatch; stale dispatches are deleted before a new one is made). Failures
are planned per method: `livekit.fail("redispatch")` (LiveKit unavailable: retryable, as a 5xx or a
timeout), `livekit.fail("observe", refused=True)` (a 4xx: final).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

from workers.adapters.livekit import NOT_FOUND
from workers.core.errors import UpstreamError
from workers.core.events import DispatchInfo, Participant, ParticipantKind
from workers.core.outgoing import IncidentEvent

JOB_RUNNING = 1  # livekit.JobStatus.JS_RUNNING: an agent took the dispatch's job


@dataclass
class Failures:
    """Failures planned per method name, each raised once, in order: before the call does anything, or
    once it has (`landed`: its answer lost on the way back)."""

    planned: dict[tuple[str, bool], list[UpstreamError]] = field(default_factory=dict)

    def plan(self, method: str, *, refused: bool = False, landed: bool = False, times: int = 1) -> None:
        code = "permission_denied" if refused else "unavailable"
        error = UpstreamError(f"{code}: planned by the test", retryable=not refused, code=code)
        self.planned.setdefault((method, landed), []).extend([error] * times)

    def check(self, method: str, *, landed: bool = False) -> None:
        """Raise the next failure planned for `method` at this point, if any."""
        if self.planned.get((method, landed)):
            raise self.planned[method, landed].pop(0)


@dataclass
class LiveRoom:
    """A room as LiveKit has it: who is in it, and its live dispatches by id."""

    sid: str
    participants: dict[str, Participant] = field(default_factory=dict)
    dispatches: dict[str, DispatchInfo] = field(default_factory=dict)


@dataclass
class InMemoryLiveKit:
    """LiveKit's rooms and agent dispatch (`Presence` and `Dispatcher`). `on_dispatch(room, dispatch)`
    is told of each dispatch Warden makes (the world decides whether an agent answers it)."""

    clock: Callable[[], float]
    rooms: dict[str, LiveRoom] = field(default_factory=dict)
    dispatched: list[tuple[str, str]] = field(default_factory=list)  # Warden's dispatches: (room, agent)
    evicted: list[tuple[str, str]] = field(default_factory=list)  # (room, identity)
    withdrawn: list[tuple[str, str]] = field(default_factory=list)  # stale dispatches deleted: (room, id)
    looked: list[str] = field(default_factory=list)  # rooms Warden asked about (`observe`)
    observed_together: list[tuple[str, ...]] = field(default_factory=list)  # `observe_many`'s batches
    listed: list[str] = field(default_factory=list)  # rooms whose dispatches it listed alone
    asked: list[tuple[float, str]] = field(default_factory=list)  # (when, room) of each ListParticipants
    transferred: list[tuple[str, str, str]] = field(default_factory=list)  # (room, identity, to)
    sent: list[tuple[str, str, bytes]] = field(default_factory=list)  # (room, topic, payload)
    on_dispatch: Callable[[str, DispatchInfo], None] | None = None
    failures: Failures = field(default_factory=Failures)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    # --- the world, as a test arranges it ---------------------------------------------------------

    def open(self, room: str) -> LiveRoom:
        """The room, made if LiveKit does not have it yet (its sid is "RM_" and its name)."""
        return self.rooms.setdefault(room, LiveRoom(f"RM_{room}"))

    def join(
        self, room: str, identity: str, *, agent_name: str | None = None, sip: bool = False
    ) -> Participant:
        """Someone joins: an agent of `agent_name`'s when it is given (taking that agent's oldest
        unanswered dispatch, as LiveKit assigns a job), else a person (a phone caller with `sip`)."""
        live = self.open(room)
        kind = ParticipantKind.AGENT if agent_name is not None else ParticipantKind.STANDARD
        kind = ParticipantKind.SIP if sip else kind
        who = Participant(identity, f"PA_{identity}", kind, agent_name or "", self.clock())
        live.participants[identity] = who
        waiting = [d for d in live.dispatches.values() if d.agent_name == agent_name and not d.statuses]
        if waiting:
            live.dispatches[waiting[0].id] = replace(waiting[0], statuses=(JOB_RUNNING,), agents=(identity,))
        return who

    def set_state(self, room: str, identity: str, state: str) -> None:
        """An agent publishes its `lk.agent.state` attribute (no webhook tells Warden)."""
        live = self.rooms[room]
        live.participants[identity] = replace(live.participants[identity], state=state)

    def leave(self, room: str, identity: str) -> None:
        if room in self.rooms:
            self.rooms[room].participants.pop(identity, None)

    def close(self, room: str) -> None:
        """The room ends: its participants and dispatches go with it."""
        self.rooms.pop(room, None)

    def app_dispatch(self, room: str, agent_name: str, *, metadata: str = "") -> DispatchInfo:
        """The application's own dispatch (not one of Warden's: not in `dispatched`)."""
        return self._create(room, agent_name, metadata, ())

    def dispatches(self, room: str, agent_name: str = "") -> list[DispatchInfo]:
        """The room's live dispatches (of `agent_name`'s, when given), oldest first."""
        live = self.rooms.get(room)
        found = live.dispatches.values() if live else []
        return [d for d in found if d.agent_name == agent_name or not agent_name]

    def agents_in(self, room: str) -> list[str]:
        live = self.rooms.get(room)
        return [p.identity for p in (live.participants.values() if live else []) if p.is_agent]

    def fail(self, method: str, *, refused: bool = False, landed: bool = False, times: int = 1) -> None:
        """The next `times` calls of `method` fail: LiveKit unavailable, or refusing (`refused`); with
        `landed`, after the call did what it was asked."""
        self.failures.plan(method, refused=refused, landed=landed, times=times)

    # --- Presence ---------------------------------------------------------------------------------

    async def observe(self, room: str) -> tuple[bool, tuple[Participant, ...], tuple[DispatchInfo, ...]]:
        self.failures.check("observe")
        self.looked.append(room)
        live = self.rooms.get(room)
        if live is None:
            return False, (), ()
        return True, tuple(live.participants.values()), tuple(live.dispatches.values())

    async def observe_many(
        self, rooms: Sequence[str], at_once: int
    ) -> list[tuple[bool, tuple[Participant, ...], tuple[DispatchInfo, ...]] | UpstreamError]:
        self.observed_together.append(tuple(rooms))
        found: list[tuple[bool, tuple[Participant, ...], tuple[DispatchInfo, ...]] | UpstreamError] = []
        for room in rooms:
            try:
                found.append(await self.observe(room))
            except UpstreamError as exc:
                found.append(exc)
        return found

    async def list_rooms(self) -> list[tuple[str, str]]:
        self.failures.check("list_rooms")
        return [(live.sid, name) for name, live in self.rooms.items()]

    async def participants(self, room: str) -> tuple[Participant, ...] | None:
        self.failures.check("participants")
        self.asked.append((self.clock(), room))
        live = self.rooms.get(room)
        return None if live is None else tuple(live.participants.values())

    async def listed_dispatches(self, room: str) -> tuple[DispatchInfo, ...]:
        self.failures.check("listed_dispatches")
        self.listed.append(room)
        if room not in self.rooms:  # livekit-server: a 503 after ~3 s
            raise UpstreamError("unavailable: no such room", retryable=True)
        return tuple(self.rooms[room].dispatches.values())

    # --- Dispatcher -------------------------------------------------------------------------------

    async def redispatch(
        self,
        room: str,
        agent_name: str,
        metadata: str,
        stale: tuple[str, ...],
        attributes: tuple[tuple[str, str], ...] = (),
    ) -> str:
        self.failures.check("redispatch")
        live = self.rooms.get(room)
        if live is None:  # CreateDispatch would bring the room back: the adapter refuses first
            raise UpstreamError("room gone", retryable=False, code=NOT_FOUND)
        current = [d for d in live.dispatches.values() if d.agent_name == agent_name]
        if any(p.is_agent and p.agent_name == agent_name for p in live.participants.values()):
            return current[0].id if current else ""  # an agent of that name came meanwhile
        for dispatch in current:
            if dispatch.id in stale:
                del live.dispatches[dispatch.id]
                self.withdrawn.append((room, dispatch.id))
        fresh = [d for d in current if d.id not in stale]
        if fresh:  # made since Warden looked (by an earlier try of this step): the live one
            return fresh[0].id
        dispatch = self._create(room, agent_name, metadata, attributes)
        self.dispatched.append((room, agent_name))
        if self.on_dispatch is not None:
            self.on_dispatch(room, dispatch)
        self.failures.check("redispatch", landed=True)
        return dispatch.id

    async def evict(self, room: str, identity: str) -> None:
        self.failures.check("evict")
        self.evicted.append((room, identity))
        self.leave(room, identity)

    # --- Protector --------------------------------------------------------------------------------

    async def callers(self, room: str) -> tuple[str, ...]:
        self.failures.check("callers")
        live = self.rooms.get(room)
        found = live.participants.values() if live else []
        return tuple(p.identity for p in found if p.kind == ParticipantKind.SIP)

    async def transfer(self, room: str, identity: str, to: str, play_dialtone: bool = True) -> None:
        """LiveKit transfers the caller to `to`: its SIP participant leaves the room once it is."""
        self.failures.check("transfer")
        if room not in self.rooms or identity not in self.rooms[room].participants:
            raise UpstreamError("not_found: no such participant", retryable=False, code=NOT_FOUND)
        self.transferred.append((room, identity, to))
        self.leave(room, identity)
        self.failures.check("transfer", landed=True)

    async def send_data(self, room: str, topic: str, payload: bytes) -> None:
        self.failures.check("send_data")
        if room not in self.rooms:  # as livekit-server v1.13.5: 503 after a wait, not 404
            raise UpstreamError("unavailable: no response from servers", retryable=True)
        self.sent.append((room, topic, payload))

    def _create(
        self, room: str, agent_name: str, metadata: str, attributes: tuple[tuple[str, str], ...]
    ) -> DispatchInfo:
        dispatch = DispatchInfo(
            f"AD_{next(self._ids)}", agent_name, metadata, self.clock(), (), tuple(attributes)
        )
        self.open(room).dispatches[dispatch.id] = dispatch
        return dispatch


@dataclass
class InMemoryCloud:
    """LiveKit Cloud's agents (`Cloud`): `deployments` maps agent ids to agent names (what `ListAgents`
    would list); `on_restart(agent_name)` is told of each restart that lands. `running` lists no
    deployment (None), so escalation waits the restart grace, as for a deployment it cannot watch."""

    deployments: dict[str, str] = field(default_factory=dict)
    agent_id: str = ""
    name: str = "LiveKit Cloud agent restart"
    restarts: list[str] = field(default_factory=list)  # agent ids, in order
    rollbacks: list[str] = field(default_factory=list)
    on_restart: Callable[[str], None] | None = None
    failures: Failures = field(default_factory=Failures)

    def fail(self, method: str, *, refused: bool = False, times: int = 1) -> None:
        self.failures.plan(method, refused=refused, times=times)

    def _id_of(self, agent_name: str) -> str:
        if self.agent_id:
            return self.agent_id
        found = [i for i, name in self.deployments.items() if name == agent_name]
        if not found:
            raise UpstreamError(
                f"no LiveKit Cloud agent named {agent_name!r}", retryable=False, code=NOT_FOUND
            )
        return found[0]

    async def restart(self, agent_name: str, **_incident: object) -> str:
        self.failures.check("restart")
        agent_id = self._id_of(agent_name)
        self.restarts.append(agent_id)
        if self.on_restart is not None:
            self.on_restart(self.deployments.get(agent_id, agent_name))
        return f"restarted {agent_id}"

    async def rollback(self, agent_name: str) -> str:
        self.failures.check("rollback")
        agent_id = self._id_of(agent_name)
        self.rollbacks.append(agent_id)
        return f"rolled back {agent_id}"

    async def running(self, agent_name: str) -> bool | None:
        return None


@dataclass
class InMemoryHook:
    """A deploy hook (`Restarter`): each restart it was asked for, as (agent, incident id, rooms)."""

    name: str = "deploy hook"
    restarts: list[tuple[str, str, tuple[str, ...]]] = field(default_factory=list)
    on_restart: Callable[[str], None] | None = None
    failures: Failures = field(default_factory=Failures)

    worker_ids: list[tuple[str, ...]] = field(default_factory=list)  # per restart: the workers it named

    async def restart(
        self,
        agent_name: str,
        *,
        incident_id: str,
        reason: str,
        rooms: list[str],
        worker_ids: list[str] | None = None,
    ) -> str:
        self.failures.check("restart")
        self.restarts.append((agent_name, incident_id, tuple(rooms)))
        self.worker_ids.append(tuple(worker_ids or ()))
        if self.on_restart is not None:
            self.on_restart(agent_name)
        return "deploy hook answered HTTP 200"


@dataclass
class InMemoryAlerts:
    """The alert channel (`Alerter`): every text that reached it, in order."""

    sent: list[str] = field(default_factory=list)
    failures: Failures = field(default_factory=Failures)

    async def send(self, text: str) -> str:
        self.failures.check("send")
        self.sent.append(text)
        return "alert webhook answered HTTP 200"

    def steps(self) -> list[str]:
        """Each alert's first word (its emoji): `:rotating_light:` opened, `:arrows_counterclockwise:`
        restarted, `:warning:` follow-up, `:x:` restart failed, `:white_check_mark:` resolved."""
        return [text.split(" ", 1)[0] for text in self.sent]


@dataclass
class InMemoryIncidentWebhook:
    """An alert route taking every step of an incident (`workers.escalation.alert_routes.EventRoute`, as
    the signed incident webhook does): every event that reached it, in order."""

    name: str = "incident webhook"
    steps: frozenset[str] = frozenset(
        {"opened", "restarted", "followup", "restart-failed", "acknowledged", "resolved"}
    )
    sent: list[IncidentEvent] = field(default_factory=list)
    failures: Failures = field(default_factory=Failures)

    async def send(self, event: IncidentEvent) -> str:
        self.failures.check("send")
        self.sent.append(event)
        return "incident webhook answered HTTP 200"

    def said(self) -> list[str]:
        """The steps it was told of, in order."""
        return [event.step for event in self.sent]

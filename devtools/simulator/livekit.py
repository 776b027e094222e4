"""A stand-in LiveKit: RoomService, AgentDispatchService and CloudAgent over Twirp (protobuf bodies).

The real livekit-api client talks to it over HTTP. It checks each request's JWT (signature, and the
`roomAdmin` grant for the room asked about), keeps rooms, participants and dispatches in memory, and
records every call so that tests (and the simulator's summary) read as facts:
`assert fake.created == [("call-42", "notetaker")]` (Warden's dispatches, not the application's).
Failures are injected per method (`fail("CreateDispatch", 503, times=2)`), as are agents that come
when dispatched (`on_dispatch`).
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import jwt
from google.protobuf.message import Message
from livekit.api import TokenVerifier
from livekit.protocol import agent, models
from livekit.protocol import agent_dispatch as ad
from livekit.protocol import cloud_agent as ca
from livekit.protocol import room as rs
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from workers.core.personal import mask_phone

STATUS = {
    "not_found": 404,
    "unauthenticated": 401,
    "permission_denied": 403,
    "unavailable": 503,
    "internal": 500,
}
REQUESTS: dict[str, type[Message]] = {
    "ListParticipants": rs.ListParticipantsRequest,
    "RemoveParticipant": rs.RoomParticipantIdentity,
    "ListRooms": rs.ListRoomsRequest,
    "CreateDispatch": ad.CreateAgentDispatchRequest,
    "DeleteDispatch": ad.DeleteAgentDispatchRequest,
    "ListDispatch": ad.ListAgentDispatchRequest,
    "RestartAgent": ca.RestartAgentRequest,
    "RollbackAgent": ca.RollbackAgentRequest,
    "ListAgents": ca.ListAgentsRequest,
}
CLOUD_AGENT_METHODS = ("RestartAgent", "RollbackAgent", "ListAgents")


def room_sid(name: str) -> str:
    return sid_for("RM_", name)


def sid_for(prefix: str, name: str) -> str:
    """The stand-in's sid for a room (`RM_`) or participant (`PA_`): the prefix and the name, readable in
    tests; one named after a phone number (a SIP call, a caller: what Warden masks) gets an opaque one,
    as LiveKit's sids are (the prefix and random letters)."""
    if ("+" in name and any(c.isdigit() for c in name)) or mask_phone(name) != name:
        return prefix + hashlib.sha1(name.encode()).hexdigest()[:12]
    return prefix + name


class TwirpFailure(Exception):
    def __init__(self, code: str, msg: str, status: int | None = None) -> None:
        super().__init__(msg)
        self.code, self.msg, self.status = code, msg, status or STATUS[code]


@dataclass
class FakeLiveKit:
    key: str
    secret: str
    rooms: dict[str, dict[str, models.ParticipantInfo]] = field(default_factory=dict)
    dispatches: dict[str, ad.AgentDispatch] = field(default_factory=dict)
    calls: list[tuple[str, str]] = field(default_factory=list)
    created: list[tuple[str, str]] = field(default_factory=list)
    failures: dict[str, list[int]] = field(default_factory=dict)
    failures_after: dict[str, list[int]] = field(default_factory=dict)
    delays: dict[str, list[float]] = field(default_factory=dict)
    on_dispatch: Callable[[ad.AgentDispatch], None] | None = None
    cloud_agents: dict[str, str] = field(default_factory=dict)  # agent id -> agent name
    restarts: list[str] = field(default_factory=list)
    on_restart: Callable[[str], None] | None = None
    # agent id -> seconds its deployment takes to come back after RestartAgent: such an agent's
    # deployment is listed (ListAgents), "Sleeping" with no replicas until then, "Running" after.
    restart_takes: dict[str, float] = field(default_factory=dict)
    back_at: dict[str, float] = field(default_factory=dict)  # agent id -> when its deployment came back
    on_remove: Callable[[str, str], None] | None = None  # (room, identity) removed by RemoveParticipant
    automatic_dispatch: bool = True  # rooms get livekit-server's empty-name dispatch (no agents configured)
    jobs: dict[str, str] = field(default_factory=dict)  # dispatch id -> identity of the agent serving it
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    # --- the world, as tests arrange it -------------------------------------------------------

    def join(
        self,
        room: str,
        identity: str,
        *,
        agent_name: str | None = None,
        at: int = 0,
        caller: str = "",
        on_behalf: str = "",
        dispatch_id: str = "",
    ) -> None:
        """A participant joins at Unix second `at` (default now): an agent when `agent_name` is given
        (livekit-server sets `lk.agent_name`), an avatar speaking for the agent `on_behalf`, or a phone
        caller (kind SIP) whose number is `caller`."""
        info = models.ParticipantInfo(
            identity=identity,
            sid=sid_for("PA_", identity),
            state=models.ParticipantInfo.ACTIVE,
            joined_at=at or int(time.time()),
        )
        if agent_name is not None or on_behalf:
            info.kind = models.ParticipantInfo.AGENT
        if agent_name is not None:  # livekit-server sets one, the agents framework the other
            info.attributes["lk.agent_name"] = info.attributes["lk.agent.name"] = agent_name
        if dispatch_id:
            self.jobs[dispatch_id] = identity
        if on_behalf:
            info.attributes["lk.publish_on_behalf"] = on_behalf
        if caller:
            info.kind = models.ParticipantInfo.SIP
            info.attributes["sip.phoneNumber"] = caller
        self.rooms.setdefault(room, {})[identity] = info

    def leave(self, room: str, identity: str) -> None:
        self.rooms.get(room, {}).pop(identity, None)

    def create_dispatch(
        self, room: str, agent_name: str, *, metadata: str = "", attributes: dict[str, str] | None = None
    ) -> ad.AgentDispatch:
        """The application's own dispatch (not Warden's: not listed in `created`)."""
        request = ad.CreateAgentDispatchRequest(
            room=room, agent_name=agent_name, metadata=metadata, attributes=attributes or {}
        )
        dispatch = self._CreateDispatch(request)
        self.created.remove((room, agent_name))
        return dispatch

    def close_room(self, room: str) -> None:
        """The room ends: its participants and dispatches go."""
        self.rooms.pop(room, None)
        for dispatch_id in [i for i, d in self.dispatches.items() if d.room == room]:
            del self.dispatches[dispatch_id]

    def fail(self, method: str, status: int, *, times: int = 1) -> None:
        """Answer the next `times` calls of `method` with HTTP `status`."""
        self.failures.setdefault(method, []).extend([status] * times)

    def slow(self, method: str, seconds: float, *, times: int = 1) -> None:
        """Answer the next `times` calls of `method` only after `seconds` (a LiveKit that hangs)."""
        self.delays.setdefault(method, []).extend([seconds] * times)

    def fail_after(self, method: str, status: int, *, times: int = 1) -> None:
        """Carry out the next `times` calls of `method`, then answer HTTP `status` (a call that landed)."""
        self.failures_after.setdefault(method, []).extend([status] * times)

    def live_dispatches(self, room: str, agent_name: str) -> list[ad.AgentDispatch]:
        return [d for d in self.dispatches.values() if d.room == room and d.agent_name == agent_name]

    def agents_in(self, room: str) -> list[str]:
        return [i for i, p in self.rooms.get(room, {}).items() if p.kind == models.ParticipantInfo.AGENT]

    # --- Twirp ----------------------------------------------------------------------------------

    @property
    def app(self) -> Starlette:
        return Starlette(routes=[Route("/twirp/livekit.{service}/{method}", self._handle, methods=["POST"])])

    async def _handle(self, request: Request) -> Response:
        method = request.path_params["method"]
        try:
            message = REQUESTS[method].FromString(await request.body())
            room = getattr(message, "room", "")
            if method in CLOUD_AGENT_METHODS:
                self._authorise_agent_admin(request.headers.get("authorization", ""))
            else:
                self._authorise(request.headers.get("authorization", ""), room)
            self.calls.append((method, room))
            if self.delays.get(method):
                await asyncio.sleep(self.delays[method].pop(0))
            queued = self.failures.get(method)
            if queued:
                status = queued.pop(0)
                raise TwirpFailure(
                    "unavailable" if status >= 500 else "permission_denied", "injected", status
                )
            reply = getattr(self, f"_{method}")(message)
            landed = self.failures_after.get(method)
            if landed:
                raise TwirpFailure("unavailable", "injected after the call landed", landed.pop(0))
        except TwirpFailure as exc:
            return JSONResponse({"code": exc.code, "msg": exc.msg}, status_code=exc.status)
        return Response(reply.SerializeToString(), media_type="application/protobuf")

    def _authorise(self, header: str, room: str) -> None:
        try:
            claims = TokenVerifier(self.key, self.secret).verify(header.removeprefix("Bearer "))
        except jwt.PyJWTError as exc:
            raise TwirpFailure("unauthenticated", f"bad token: {type(exc).__name__}") from None
        if claims.video and claims.video.room_list and not room:
            return  # ListRooms asks for roomList only
        if not claims.video or not claims.video.room_admin or (room and claims.video.room not in ("", room)):
            raise TwirpFailure("permission_denied", "roomAdmin grant for this room required")

    def _authorise_agent_admin(self, header: str) -> None:
        try:
            claims = TokenVerifier(self.key, self.secret).verify(header.removeprefix("Bearer "))
        except jwt.PyJWTError as exc:
            raise TwirpFailure("unauthenticated", f"bad token: {type(exc).__name__}") from None
        if claims.agent is None or not claims.agent.admin:
            raise TwirpFailure("permission_denied", "agent admin grant required")

    def _room(self, name: str) -> dict[str, models.ParticipantInfo]:
        if name not in self.rooms:
            raise TwirpFailure("not_found", "requested room does not exist")
        return self.rooms[name]

    def _ListParticipants(self, req: rs.ListParticipantsRequest) -> rs.ListParticipantsResponse:
        # livekit-server answers for a room it does not have with an empty list, not `not_found`
        return rs.ListParticipantsResponse(participants=list(self.rooms.get(req.room, {}).values()))

    def _RemoveParticipant(self, req: rs.RoomParticipantIdentity) -> rs.RemoveParticipantResponse:
        if self._room(req.room).pop(req.identity, None) is None:
            raise TwirpFailure("not_found", "participant not found")
        if self.on_remove is not None:
            self.on_remove(req.room, req.identity)
        return rs.RemoveParticipantResponse()

    def _ListRooms(self, req: rs.ListRoomsRequest) -> rs.ListRoomsResponse:
        names = [n for n in self.rooms if not req.names or n in req.names]
        return rs.ListRoomsResponse(rooms=[models.Room(name=n, sid=room_sid(n)) for n in names])

    def _CreateDispatch(self, req: ad.CreateAgentDispatchRequest) -> ad.AgentDispatch:
        self.rooms.setdefault(req.room, {})  # livekit-server creates a room it is asked to dispatch to
        dispatch = ad.AgentDispatch(
            id=f"AD_{next(self._ids)}",
            agent_name=req.agent_name,
            room=req.room,
            metadata=req.metadata,
            attributes=dict(req.attributes),
            state=ad.AgentDispatchState(created_at=time.time_ns()),
        )
        self.dispatches[dispatch.id] = dispatch
        self.created.append((req.room, req.agent_name))
        if self.on_dispatch is not None:
            self.on_dispatch(dispatch)
        return dispatch

    def _DeleteDispatch(self, req: ad.DeleteAgentDispatchRequest) -> ad.AgentDispatch:
        dispatch = self.dispatches.pop(req.dispatch_id, None)
        if dispatch is None:
            raise TwirpFailure("not_found", "dispatch not found")
        serving = self.jobs.pop(dispatch.id, "")
        removed = bool(serving) and self.rooms.get(dispatch.room, {}).pop(serving, None) is not None
        if removed and self.on_remove is not None:  # livekit-server ends the job, removes its agent
            self.on_remove(dispatch.room, serving)
        return dispatch

    def _ListDispatch(self, req: ad.ListAgentDispatchRequest) -> ad.ListAgentDispatchResponse:
        if req.room not in self.rooms:  # as livekit-server answers, after 3 s
            raise TwirpFailure("unavailable", "no response from servers")
        found = [self._with_job(d) for d in self.dispatches.values() if d.room == req.room]
        if self.automatic_dispatch:
            found.insert(0, ad.AgentDispatch(id=f"AD_auto_{room_sid(req.room)}", room=req.room))
        return ad.ListAgentDispatchResponse(agent_dispatches=found)

    def _with_job(self, dispatch: ad.AgentDispatch) -> ad.AgentDispatch:
        """A dispatch as listed: a served one has its job, JS_RUNNING for good (livekit-server never
        updates the listed status, even after the agent left)."""
        identity = self.jobs.get(dispatch.id)
        if not identity:
            return dispatch
        listed = ad.AgentDispatch()
        listed.CopyFrom(dispatch)
        job = listed.state.jobs.add(
            id=f"AJ_{dispatch.id}", dispatch_id=dispatch.id, agent_name=dispatch.agent_name
        )
        job.state.status = agent.JobStatus.JS_RUNNING
        job.state.participant_identity = identity
        return listed

    def _RestartAgent(self, req: ca.RestartAgentRequest) -> ca.RestartAgentResponse:
        if req.agent_id not in self.cloud_agents:
            raise TwirpFailure("not_found", "agent not found")
        self.restarts.append(req.agent_id)
        if req.agent_id in self.restart_takes:
            self.back_at[req.agent_id] = time.time() + self.restart_takes[req.agent_id]
        if self.on_restart is not None:
            self.on_restart(req.agent_id)
        return ca.RestartAgentResponse(success=True, message="restarting")

    def _RollbackAgent(self, req: ca.RollbackAgentRequest) -> ca.RollbackAgentResponse:
        self.restarts.append(f"rollback:{req.agent_id}")
        return ca.RollbackAgentResponse(success=req.agent_id in self.cloud_agents)

    def _ListAgents(self, req: ca.ListAgentsRequest) -> ca.ListAgentsResponse:
        agents = [
            ca.AgentInfo(agent_id=i, agent_name=n, agent_deployments=self._deployments(i, n))
            for i, n in self.cloud_agents.items()
            if (not req.agent_name or n == req.agent_name) and (not req.agent_id or i == req.agent_id)
        ]
        return ca.ListAgentsResponse(agents=agents)

    def _deployments(self, agent_id: str, agent_name: str) -> list[ca.AgentDeployment]:
        if agent_id not in self.restart_takes:
            return []
        up = time.time() >= self.back_at.get(agent_id, float("inf"))
        return [
            ca.AgentDeployment(
                region="us-east",
                agent_id=agent_id,
                agent_name=agent_name,
                status="Running" if up else "Sleeping",
                replicas=1 if up else 0,
                min_replicas=0,
                max_replicas=2,
            )
        ]

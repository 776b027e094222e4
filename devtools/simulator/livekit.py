"""A stand-in LiveKit: RoomService, AgentDispatchService, SIP's TransferSIPParticipant and CloudAgent over
Twirp (protobuf bodies).

The real livekit-api client talks to it over HTTP. It checks each request's JWT (signature, and the
`roomAdmin` grant for the room asked about; `roomCreate` for CreateRoom and DeleteRoom), keeps rooms,
participants, dispatches, jobs and agent workers in memory, and records every call so that tests (and the
simulator's summary) read as facts: `assert fake.created == [("call-42", "notetaker")]` (Warden's
dispatches, not the application's). Failures are injected per method (`fail("CreateDispatch", 503,
times=2)`), as are agents that come when dispatched: scripted by a test (`on_dispatch`), or brought by the
stand-in's own workers (`add_worker`).

It behaves as livekit-server v1.13.5 was measured to (`../shared/LIVEKIT.md`, issue 23); how, part by
part: rooms and participants in `rooms.py`, CreateRoom, DeleteRoom and the idle close of created rooms in
`room_service.py`, dispatches, jobs and workers in `dispatch.py`, deployments that fall asleep after a
quiet spell (`deployment(name, sleep_after=...)`, woken by RestartAgent or `POST /deploy-hook`) in
`deployments.py`, Cloud agents in `cloud.py`, a caller's transfer and `SendData` in `sip.py` (recorded in
`transfers` and `messages`). What the server does of its own doing (a room
`CreateDispatch` created, an agent a worker brought, a participant removed or timed out) it announces
through `on_webhook`; what a test does (`join`, `publish`, `leave`, `start_room`, `close_room`) returns
the webhooks for the test to send.

Timings are constructor options, on `clock` (wall time, or a `ManualClock` the test moves); the real
server's value of each is a named constant, and the default. None is shortened: the tests written
against the earlier stand-in (which listed a job the moment its agent joined) pass with every faithful
default, the job listing lag included, because their scripted agents join the moment they are
dispatched. What the real timing does to Warden shows with an agent slow to connect: a stand-in worker
with a cold start (`scenarios.cold_start`), which issue 23's tests bring. Faithful: jobs listed
`job_listing_lag=JOB_LISTING_LAG` (5 s) after the accept, the automatic empty-name dispatch, both
agent-name attributes, `track_unpublished` and `disconnectReason`, `crash_timeout=CRASH_TIMEOUT` (20 s),
an asynchronous `DeleteDispatch` (`removal_wait=REMOVAL_WAIT`, `entrypoint_grace=ENTRYPOINT_GRACE`), no
job for a worker at load >= `FULL_LOAD`, `CreateDispatch` creating a missing room, no `agent_job_*`
webhooks, no re-dispatch by itself, and `ListDispatch` of a missing room answering 503 after
`missing_room_wait=MISSING_ROOM_WAIT` (3 s, on wall time: it is the HTTP answer that is slow). A test
may shorten any of them (`job_listing_lag=0.0`) where the timing is not what it is about; `faithful()`
spells them all out. Workers: `add_worker(name, ...)` or `agent_workers=(name, ...)`, each with
`accept_after=ACCEPT_AFTER`, `cold_start=WARM_START` and `worker_load=0.0` unless told otherwise.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import jwt
from google.protobuf.message import Message
from livekit.api import TokenVerifier
from livekit.protocol import agent_dispatch as ad
from livekit.protocol import cloud_agent as ca
from livekit.protocol import room as rs
from livekit.protocol import sip
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from devtools.simulator.base import STATUS, TwirpFailure, Webhook, room_sid, sid_for
from devtools.simulator.clock import ManualClock, RealClock
from devtools.simulator.cloud import CloudAgents
from devtools.simulator.dispatch import (
    ACCEPT_AFTER,
    COLD_START,
    ENTRYPOINT_GRACE,
    FULL_LOAD,
    JOB_LISTING_LAG,
    REMOVAL_WAIT,
    WARM_START,
    Job,
    Worker,
)
from devtools.simulator.room_service import DEPARTURE_TIMEOUT, EMPTY_TIMEOUT, RoomService
from devtools.simulator.rooms import CRASH_TIMEOUT, Presence
from devtools.simulator.sip import NO_BRIDGE_WAIT, TRANSFER_HANGUP, DataMessage, SipAndData, Transfer

__all__ = [
    "ACCEPT_AFTER",
    "COLD_START",
    "CRASH_TIMEOUT",
    "DEPARTURE_TIMEOUT",
    "EMPTY_TIMEOUT",
    "ENTRYPOINT_GRACE",
    "FULL_LOAD",
    "JOB_LISTING_LAG",
    "MISSING_ROOM_WAIT",
    "REMOVAL_WAIT",
    "STATUS",
    "TRANSFER_HANGUP",
    "WARM_START",
    "DataMessage",
    "FakeLiveKit",
    "Job",
    "ManualClock",
    "Presence",
    "RealClock",
    "Transfer",
    "TwirpFailure",
    "Webhook",
    "Worker",
    "faithful",
    "room_sid",
    "sid_for",
]

MISSING_ROOM_WAIT = 3.0  # ListDispatch of a room the server does not have: 503 after ~3 s [real]
REQUESTS: dict[str, type[Message]] = {
    "ListParticipants": rs.ListParticipantsRequest,
    "RemoveParticipant": rs.RoomParticipantIdentity,
    "SendData": rs.SendDataRequest,
    "TransferSIPParticipant": sip.TransferSIPParticipantRequest,
    "ListRooms": rs.ListRoomsRequest,
    "CreateRoom": rs.CreateRoomRequest,
    "DeleteRoom": rs.DeleteRoomRequest,
    "CreateDispatch": ad.CreateAgentDispatchRequest,
    "DeleteDispatch": ad.DeleteAgentDispatchRequest,
    "ListDispatch": ad.ListAgentDispatchRequest,
    "RestartAgent": ca.RestartAgentRequest,
    "RollbackAgent": ca.RollbackAgentRequest,
    "ListAgents": ca.ListAgentsRequest,
}
CLOUD_AGENT_METHODS = ("RestartAgent", "RollbackAgent", "ListAgents")
ROOM_CREATE_METHODS = ("CreateRoom", "DeleteRoom")  # the `roomCreate` grant, not `roomAdmin`


def faithful(**options: Any) -> dict[str, Any]:
    """FakeLiveKit's timing options, each as livekit-server's (the defaults, spelled out), `options` over."""
    timing = {
        "job_listing_lag": JOB_LISTING_LAG,
        "crash_timeout": CRASH_TIMEOUT,
        "removal_wait": REMOVAL_WAIT,
        "entrypoint_grace": ENTRYPOINT_GRACE,
        "missing_room_wait": MISSING_ROOM_WAIT,
        "transfer_hangup": TRANSFER_HANGUP,
    }
    return {**timing, **options}


@dataclass
class FakeLiveKit(RoomService, SipAndData, CloudAgents):
    calls: list[tuple[str, str]] = field(default_factory=list)
    failures: dict[str, list[int]] = field(default_factory=dict)
    failures_after: dict[str, list[int]] = field(default_factory=dict)
    delays: dict[str, list[float]] = field(default_factory=dict)
    missing_room_wait: float = MISSING_ROOM_WAIT
    agent_workers: tuple[str, ...] = ()  # agents whose workers are registered from the start
    deploy_hooks: list[str] = field(
        default_factory=list
    )  # the agent names `POST /deploy-hook` was called for

    def __post_init__(self) -> None:
        for name in self.agent_workers:
            self.add_worker(name)

    # --- failures, as tests inject them ---------------------------------------------------------

    def fail(self, method: str, status: int, *, times: int = 1) -> None:
        """Answer the next `times` calls of `method` with HTTP `status`."""
        self.failures.setdefault(method, []).extend([status] * times)

    def slow(self, method: str, seconds: float, *, times: int = 1) -> None:
        """Answer the next `times` calls of `method` only after `seconds` (a LiveKit that hangs)."""
        self.delays.setdefault(method, []).extend([seconds] * times)

    def fail_after(self, method: str, status: int, *, times: int = 1) -> None:
        """Carry out the next `times` calls of `method`, then answer HTTP `status` (a call that landed)."""
        self.failures_after.setdefault(method, []).extend([status] * times)

    # --- Twirp ----------------------------------------------------------------------------------

    @property
    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/twirp/livekit.{service}/{method}", self._handle, methods=["POST"]),
                Route("/deploy-hook", self._deploy_hook, methods=["POST"]),
            ]
        )

    async def _deploy_hook(self, request: Request) -> Response:
        """Warden's deploy hook (`WARDEN_DEPLOY_HOOK_URL` or a rule's `deploy_hook_url` pointed here):
        `{"agent_name": ...}` redeploys that agent's deployment (`deployments.py`). Not signed-checked."""
        try:
            name = str((await request.json())["agent_name"])
        except (ValueError, KeyError, TypeError):
            return JSONResponse({"error": "expected JSON with agent_name"}, status_code=400)
        self.deploy_hooks.append(name)
        self.redeploy(name)
        return JSONResponse({"deployed": name}, status_code=202)

    async def _handle(self, request: Request) -> Response:
        method = request.path_params["method"]
        try:
            message = REQUESTS[method].FromString(await request.body())
            room = _room_of(message)
            if method in CLOUD_AGENT_METHODS:
                self._authorise_agent_admin(request.headers.get("authorization", ""))
            elif method in ROOM_CREATE_METHODS:
                self._authorise_room_create(request.headers.get("authorization", ""))
            elif method == "TransferSIPParticipant":
                self._authorise_sip_call(request.headers.get("authorization", ""), room)
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
            if method in ("ListDispatch", "SendData") and room not in self.rooms:
                await asyncio.sleep(self.missing_room_wait)  # the server's RPC to a node that has no room
            if method == "TransferSIPParticipant" and not self.sip_bridge:
                await asyncio.sleep(min(NO_BRIDGE_WAIT, self.missing_room_wait))  # nobody answers the RPC
            reply = getattr(self, f"_{method}")(message)
            landed = self.failures_after.get(method)
            if landed:
                raise TwirpFailure("unavailable", "injected after the call landed", landed.pop(0))
        except TwirpFailure as exc:
            body = {"code": exc.code, "msg": exc.msg, **({"meta": exc.meta} if exc.meta else {})}
            return JSONResponse(body, status_code=exc.status)
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

    def _authorise_sip_call(self, header: str, room: str) -> None:
        """The `sip.call` grant and `roomAdmin` for the room; without either: 401 "permissions denied"
        (livekit-server's `twirpAuthError`) [real]."""
        try:
            claims = TokenVerifier(self.key, self.secret).verify(header.removeprefix("Bearer "))
        except jwt.PyJWTError as exc:
            raise TwirpFailure("unauthenticated", f"bad token: {type(exc).__name__}") from None
        video = claims.video
        if not (claims.sip and claims.sip.call) or not (video and video.room_admin and video.room == room):
            raise TwirpFailure("unauthenticated", "permissions denied")

    def _authorise_room_create(self, header: str) -> None:
        try:
            claims = TokenVerifier(self.key, self.secret).verify(header.removeprefix("Bearer "))
        except jwt.PyJWTError as exc:
            raise TwirpFailure("unauthenticated", f"bad token: {type(exc).__name__}") from None
        if not claims.video or not claims.video.room_create:
            raise TwirpFailure("permission_denied", "roomCreate grant required")

    def _authorise_agent_admin(self, header: str) -> None:
        try:
            claims = TokenVerifier(self.key, self.secret).verify(header.removeprefix("Bearer "))
        except jwt.PyJWTError as exc:
            raise TwirpFailure("unauthenticated", f"bad token: {type(exc).__name__}") from None
        if claims.agent is None or not claims.agent.admin:
            raise TwirpFailure("permission_denied", "agent admin grant required")


def _room_of(message: Message) -> str:
    """The room a request is about (for the grant and the missing-room wait)."""
    if isinstance(message, rs.CreateRoomRequest):
        return message.name
    if isinstance(message, sip.TransferSIPParticipantRequest):
        return message.room_name
    return str(getattr(message, "room", ""))

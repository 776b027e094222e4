"""The LiveKit adapter: who is in a room, which dispatches exist, remove a participant, dispatch an agent.

Speaks Twirp through livekit-api's own client (aiohttp): one session for the adapter's lifetime, and
each room's token signed once and reused (`workers.adapters.tokens`). Errors become `UpstreamError`:
retryable for transport failures, timeouts and 5xx; final for 4xx (bad credentials, bad request). The
SDK's region failover is off, so that retries (and their backoff) stay with the job that owns them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol, TypeVar

import aiohttp
from livekit.api import (
    AgentDispatch,
    CreateAgentDispatchRequest,
    CreateRoomRequest,
    DeleteRoomRequest,
    ListParticipantsRequest,
    ListRoomsRequest,
    LiveKitAPI,
    RoomParticipantIdentity,
    SendDataRequest,
    TransferSIPParticipantRequest,
)
from livekit.api.twirp_client import ServerError
from livekit.protocol.models import DataPacket, ParticipantInfo

from workers.adapters.existence import RoomsListed
from workers.adapters.tokens import Tokens
from workers.adapters.webhook import (
    AGENT_NAME_ATTRIBUTES,
    ON_BEHALF_ATTRIBUTE,
    agent_state,
    worker_id,
)
from workers.core.errors import UpstreamError
from workers.core.events import DispatchInfo, JobInfo, Participant
from workers.core.personal import mask_identity, mask_text

T = TypeVar("T")
NOT_FOUND = "not_found"
TRANSFER_TIMEOUT = 30.0  # seconds a transfer may take: it dials
ErrorCallback = Callable[[str], None]
Observed = tuple[bool, tuple[Participant, ...], tuple[DispatchInfo, ...]]  # exists, participants, dispatches


class Presence(Protocol):
    async def observe(self, room: str) -> Observed:
        """(room exists, participants, dispatches) as LiveKit sees them now."""
        ...

    async def observe_many(self, rooms: Sequence[str], at_once: int) -> list[Observed | UpstreamError]:
        """`observe` of each room, as one `ListRooms` for all of them and then the participants and
        dispatches of each room LiveKit has, `at_once` rooms at a time (two calls each); a room's
        failure is its own (the `UpstreamError` in its place)."""
        ...

    async def list_rooms(self) -> list[tuple[str, str]]:
        """(sid, name) of every room LiveKit has now."""
        ...

    async def participants(self, room: str) -> tuple[Participant, ...] | None:
        """Who is in the room now; None when LiveKit has no such room."""
        ...

    async def listed_dispatches(self, room: str) -> tuple[DispatchInfo, ...]:
        """The room's dispatches now (asked of rooms `list_rooms` just listed)."""
        ...


class Dispatcher(Protocol):
    async def redispatch(
        self,
        room: str,
        agent_name: str,
        metadata: str,
        stale: tuple[str, ...],
        attributes: tuple[tuple[str, str], ...] = (),
    ) -> str:
        """Replace the `stale` dispatches with one new one; return the live dispatch's id."""
        ...

    async def evict(self, room: str, identity: str) -> None:
        """Remove a participant (a stalled agent) from the room."""
        ...


class Protector(Protocol):
    """What Warden does for the person while an agent cannot be brought back (issue 27)."""

    async def callers(self, room: str) -> tuple[str, ...]:
        """The identities of the SIP participants in the room now, as LiveKit has them (never kept)."""
        ...

    async def transfer(self, room: str, identity: str, to: str, play_dialtone: bool = True) -> None:
        """Transfer the SIP participant `identity` to `to` (`tel:+...` or `sip:...`)."""
        ...

    async def send_data(self, room: str, topic: str, payload: bytes) -> None:
        """Send `payload` to everyone in the room, reliably, on `topic`."""
        ...


class CanaryRooms(Protocol):
    """What a canary asks of LiveKit (`workers.jobs.canaries`)."""

    async def create_room(self, room: str, empty_timeout: int, metadata: str) -> None: ...

    async def dispatch(self, room: str, agent_name: str, metadata: str) -> str:
        """A new dispatch of `agent_name` to `room`; its id."""
        ...

    async def agent_in(self, room: str, agent_name: str) -> bool:
        """Is a participant of kind AGENT named `agent_name` in the room now?"""
        ...

    async def listed_dispatches(self, room: str) -> tuple[DispatchInfo, ...]:
        """The room's dispatches now, with their jobs' statuses and reasons (a failed canary's)."""
        ...

    async def delete_room(self, room: str) -> None:
        """Delete the room (a room LiveKit no longer has is deleted already)."""
        ...

    async def room_names(self) -> list[str]:
        """The names of every room LiveKit has now."""
        ...


class LiveKitRooms:
    """`Presence`, `Dispatcher`, `Protector` and `CanaryRooms` over LiveKit's RoomService,
    AgentDispatchService and SIP service."""

    def __init__(
        self,
        url: str,
        api_key: str,
        api_secret: str,
        *,
        timeout: float = 5.0,
        on_error: ErrorCallback | None = None,
    ) -> None:
        self._api = LiveKitAPI(
            url, api_key, api_secret, timeout=aiohttp.ClientTimeout(total=timeout), failover=False
        )
        self.tokens = Tokens(api_key, api_secret)
        self.tokens.install([self._api.room, self._api.agent_dispatch, self._api.sip])
        self._timeout = timeout
        self._on_error = on_error
        self._listed = RoomsListed(self._named)

    async def aclose(self) -> None:
        await self._listed.aclose()
        await self._api.aclose()

    async def observe(self, room: str) -> Observed:
        if not await self._exists(room):
            return False, (), ()
        return await self._inside(room)

    async def observe_many(self, rooms: Sequence[str], at_once: int) -> list[Observed | UpstreamError]:
        try:
            there = await self._named(rooms)
        except UpstreamError as exc:
            return [exc] * len(rooms)
        gate = asyncio.Semaphore(at_once)

        async def one(room: str) -> Observed | UpstreamError:
            if room not in there:
                return False, (), ()
            async with gate:
                try:
                    return await self._inside(room)
                except UpstreamError as exc:
                    return exc

        return list(await asyncio.gather(*(one(room) for room in rooms)))

    async def _inside(self, room: str) -> Observed:
        """Who is in a room LiveKit has just listed, and its dispatches."""
        asked = await asyncio.gather(
            self._call(self._api.room.list_participants(ListParticipantsRequest(room=room))),
            self._call(self._api.agent_dispatch.list_dispatch(room)),
            return_exceptions=True,
        )
        listed, dispatches = asked
        if isinstance(listed, UpstreamError) and listed.code == NOT_FOUND:
            return False, (), ()
        for failure in asked:
            if isinstance(failure, BaseException):
                raise failure
        assert not isinstance(listed, BaseException) and not isinstance(dispatches, BaseException)
        participants = tuple(_participant(p) for p in listed.participants)
        return True, participants, tuple(_dispatch(d) for d in dispatches)

    async def _exists(self, room: str) -> bool:
        """Does LiveKit have the room now? livekit-server answers `ListParticipants` for a room it does
        not have with an empty list (and `ListDispatch` with a 503 after 3 s), so only `ListRooms` with
        the room's name tells (in milliseconds); concurrent checks share one (`existence`)."""
        return await self._listed.has(room)

    async def _named(self, rooms: Sequence[str]) -> set[str]:
        listed = await self._call(self._api.room.list_rooms(ListRoomsRequest(names=list(rooms))))
        return {r.name for r in listed.rooms}

    async def _call(self, request: Awaitable[T]) -> T:
        return await call(request, self._timeout, on_error=self._on_error)

    async def list_rooms(self) -> list[tuple[str, str]]:
        listed = await self._call(self._api.room.list_rooms(ListRoomsRequest()))
        return [(r.sid, r.name) for r in listed.rooms]

    async def participants(self, room: str) -> tuple[Participant, ...] | None:
        # Asked for rooms `list_rooms` just listed (reconciliation): no second look whether the room is
        # there. One that ended since lists nobody (livekit-server answers an unknown room with an empty
        # list); the next reconciliation finds it gone.
        try:
            listed = await self._call(self._api.room.list_participants(ListParticipantsRequest(room=room)))
        except UpstreamError as exc:
            if exc.code == NOT_FOUND:
                return None
            raise
        return tuple(_participant(p) for p in listed.participants)

    async def listed_dispatches(self, room: str) -> tuple[DispatchInfo, ...]:
        # Asked for rooms `list_rooms` just listed: livekit-server answers one that ended since with a 503
        # after ~3 s, a retryable error (the caller skips the room; the next reconciliation finds it gone).
        return tuple(_dispatch(d) for d in await self._call(self._api.agent_dispatch.list_dispatch(room)))

    async def redispatch(
        self,
        room: str,
        agent_name: str,
        metadata: str,
        stale: tuple[str, ...],
        attributes: tuple[tuple[str, str], ...] = (),
    ) -> str:
        if not await self._exists(room):
            # CreateDispatch would bring the room back (livekit-server creates the rooms it is asked about)
            raise UpstreamError("room gone", retryable=False, code=NOT_FOUND)
        listed, dispatches = await asyncio.gather(
            self._call(self._api.room.list_participants(ListParticipantsRequest(room=room))),
            self._call(self._api.agent_dispatch.list_dispatch(room)),
        )
        current = [d for d in dispatches if d.agent_name == agent_name]
        here = {
            p.identity
            for p in listed.participants
            if p.kind == ParticipantInfo.AGENT and _agent_name(p) == agent_name
        }
        if here:
            # An agent of that name is in the room now: it joined after Warden looked (LiveKit lists a
            # job ~5 s after it starts). Deleting its dispatch would remove it from the room; it is the
            # live one.
            serving = [d for d in current if any(j.state.participant_identity in here for j in d.state.jobs)]
            return str((serving or current)[0].id) if serving or current else ""
        # A dispatch Warden did not see when it decided was made since: by an earlier try of this step
        # (a timeout that landed after all), or by LiveKit itself. Either way it is the live one.
        fresh = [d for d in current if d.id not in stale]
        for dispatch in current:
            if dispatch.id in stale:
                await _ignore_not_found(
                    self._call, self._api.agent_dispatch.delete_dispatch(dispatch.id, room)
                )
        if fresh:
            return str(fresh[0].id)
        request = CreateAgentDispatchRequest(
            agent_name=agent_name, room=room, metadata=metadata, attributes=dict(attributes)
        )
        created = await self._call(self._api.agent_dispatch.create_dispatch(request))
        return str(created.id)

    async def evict(self, room: str, identity: str) -> None:
        await _ignore_not_found(
            self._call,
            self._api.room.remove_participant(RoomParticipantIdentity(room=room, identity=identity)),
        )

    async def callers(self, room: str) -> tuple[str, ...]:
        listed = await self._call(self._api.room.list_participants(ListParticipantsRequest(room=room)))
        return tuple(p.identity for p in listed.participants if p.kind == ParticipantInfo.SIP)

    async def transfer(self, room: str, identity: str, to: str, play_dialtone: bool = True) -> None:
        request = TransferSIPParticipantRequest(
            room_name=room, participant_identity=identity, transfer_to=to, play_dialtone=play_dialtone
        )
        # Transferring dials: it takes longer than other calls. Its error never repeats the target.
        try:
            await call(
                self._api.sip.transfer_sip_participant(request),
                max(self._timeout, TRANSFER_TIMEOUT),
                on_error=self._on_error,
            )
        except UpstreamError as exc:
            raise UpstreamError(mask_text(str(exc), to), retryable=exc.retryable, code=exc.code) from None

    async def send_data(self, room: str, topic: str, payload: bytes) -> None:
        request = SendDataRequest(room=room, data=payload, kind=DataPacket.Kind.RELIABLE, topic=topic)
        await self._call(self._api.room.send_data(request))

    async def create_room(self, room: str, empty_timeout: int, metadata: str) -> None:
        request = CreateRoomRequest(name=room, empty_timeout=empty_timeout, metadata=metadata)
        await self._call(self._api.room.create_room(request))

    async def dispatch(self, room: str, agent_name: str, metadata: str) -> str:
        request = CreateAgentDispatchRequest(agent_name=agent_name, room=room, metadata=metadata)
        return str((await self._call(self._api.agent_dispatch.create_dispatch(request))).id)

    async def agent_in(self, room: str, agent_name: str) -> bool:
        listed = await self._call(self._api.room.list_participants(ListParticipantsRequest(room=room)))
        return any(
            p.kind == ParticipantInfo.AGENT and _agent_name(p) == agent_name for p in listed.participants
        )

    async def delete_room(self, room: str) -> None:
        await _ignore_not_found(self._call, self._api.room.delete_room(DeleteRoomRequest(room=room)))

    async def room_names(self) -> list[str]:
        return [name for _, name in await self.list_rooms()]


def _agent_name(info: ParticipantInfo) -> str:
    return next((info.attributes[a] for a in AGENT_NAME_ATTRIBUTES if info.attributes.get(a)), "")


def _dispatch(dispatch: AgentDispatch) -> DispatchInfo:
    return DispatchInfo(
        id=dispatch.id,
        agent_name=dispatch.agent_name,
        metadata=dispatch.metadata,
        created_at=dispatch.state.created_at / 1e9,  # nanoseconds
        statuses=tuple(int(job.state.status) for job in dispatch.state.jobs),
        attributes=tuple(sorted(dispatch.attributes.items())),
        agents=tuple(
            j.state.participant_identity for j in dispatch.state.jobs if j.state.participant_identity
        ),
        jobs=tuple(
            JobInfo(
                int(j.state.status),
                int(j.state.reason),
                worker_id(j.state.worker_id),
                j.state.participant_identity,
            )
            for j in dispatch.state.jobs
        ),
    )


def _participant(info: ParticipantInfo) -> Participant:
    return Participant(
        identity=mask_identity(info.identity, int(info.kind)),
        sid=info.sid,
        kind=int(info.kind),
        agent_name=_agent_name(info),
        joined_at=float(info.joined_at),
        on_behalf=info.attributes.get(ON_BEHALF_ATTRIBUTE, ""),
        publishing=len(info.tracks) > 0,
        state=agent_state(info.attributes) if info.kind == ParticipantInfo.AGENT else "",
    )


async def call(request: Awaitable[T], timeout: float, *, on_error: ErrorCallback | None = None) -> T:
    """Await a livekit-api request within `timeout` seconds, turning its failures into `UpstreamError`;
    `on_error` is told each failure's code (the caller counts them).

    The timeout is enforced here: livekit-api's Twirp client passes `timeout=None` to each aiohttp
    request, which turns the session's timeout off (livekit-api 1.2.2), so a hung LiveKit would hang
    the job."""
    try:
        async with asyncio.timeout(timeout):
            return await request
    except ServerError as exc:
        if on_error is not None:
            on_error(exc.code or str(exc.status))
        retryable = exc.status >= 500 or exc.status == 429
        message = f"{exc.code}: {exc.message or 'HTTP ' + str(exc.status)}"
        raise UpstreamError(message, retryable=retryable, code=exc.code) from None
    except (TimeoutError, aiohttp.ClientError) as exc:
        if on_error is not None:
            on_error("timeout" if isinstance(exc, TimeoutError) else "unreachable")
        raise UpstreamError(f"unreachable: {type(exc).__name__}", retryable=True) from None


async def _ignore_not_found(
    send: Callable[[Awaitable[object]], Awaitable[object]], request: Awaitable[object]
) -> None:
    try:
        await send(request)
    except UpstreamError as exc:
        if exc.code != NOT_FOUND:
            raise

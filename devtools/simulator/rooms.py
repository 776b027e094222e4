"""Rooms and participants in the stand-in LiveKit: who is in a room, and the webhooks their comings and
goings make, shaped as livekit-server v1.13.5 sends them.

- A participant's webhooks carry its protojson (`joinedAt` as a string, `kind` by name, zero values left
  out); an agent carries both `lk.agent_name` (set by the server) and `lk.agent.name` (by livekit-agents).
- A participant that leaves with tracks unpublishes them first (`track_unpublished`, with only the
  participant's sid and identity), then `participant_left` carries `state: DISCONNECTED` and a
  `disconnectReason`: CLIENT_INITIATED when it left, PARTICIPANT_REMOVED when RemoveParticipant (or a
  DeleteDispatch) removed it, CONNECTION_TIMEOUT when it crashed.
- A crashed participant (`crash`) says nothing: the server lists it `crash_timeout` seconds (20 s
  measured) before it drops it with CONNECTION_TIMEOUT.
- `ListParticipants` of a room the server does not have answers an empty list, not `not_found`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from google.protobuf.json_format import MessageToDict
from livekit.protocol import models
from livekit.protocol import room as rs
from livekit.protocol.agent_dispatch import RoomAgentDispatch

from devtools.simulator.agent_states import AGENT_STATE, States
from devtools.simulator.base import Base, TwirpFailure, Webhook, room_sid, sid_for

CRASH_TIMEOUT = 20.0  # a crashed participant is listed this long, then leaves with CONNECTION_TIMEOUT [real]
AGENT_KIND = models.ParticipantInfo.AGENT


@dataclass(frozen=True)
class Presence:
    """A participant came (`joined`) or went, at `at` on the stand-in's clock."""

    at: float
    room: str
    identity: str
    agent_name: str  # "" for anyone but an agent
    joined: bool


@dataclass
class Rooms(Base):
    rooms: dict[str, dict[str, models.ParticipantInfo]] = field(default_factory=dict)  # read, don't write
    crash_timeout: float = CRASH_TIMEOUT
    presence: list[Presence] = field(default_factory=list)  # every coming and going, in order
    tracks: dict[tuple[str, str], list[str]] = field(default_factory=dict)  # (room, identity) -> track sids
    on_remove: Callable[[str, str], None] | None = None  # told (room, identity) the server removed
    _generation: dict[str, int] = field(default_factory=dict)  # room -> its incarnation (timers check it)

    # --- the world, as tests arrange it -------------------------------------------------------

    def start_room(self, name: str, *, agents: Sequence[str | RoomAgentDispatch] = ()) -> list[Webhook]:
        """The room starts (if it is not there already) with `agents` configured (a token's roomConfig,
        CreateRoom's `agents`: names, or `RoomAgentDispatch`es with their metadata), or none: then
        livekit-server gives it its automatic empty-name dispatch.
        A room that exists already keeps what it has (the server drops a later roomConfig). Returns the
        webhook of the start (`room_started`), or none."""
        if name in self.rooms:
            return []
        self.rooms[name] = {}
        self._generation[name] = self._generation.get(name, 0) + 1
        self._room_created(name, agents)
        return [("room_started", {})]

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
    ) -> list[Webhook]:
        """A participant joins at Unix second `at` (default now), starting the room if need be: an agent
        when `agent_name` is given (serving the dispatch `dispatch_id`, if given), an avatar speaking for
        the agent `on_behalf`, or a phone caller (kind SIP) whose number is `caller`. Returns the
        webhooks livekit-server sends for it (`room_started` if the room started, `participant_joined`)."""
        webhooks = self.start_room(room)
        now = self._now()
        info = models.ParticipantInfo(
            identity=identity,
            sid=sid_for("PA_", identity),
            state=models.ParticipantInfo.ACTIVE,
            joined_at=at or int(now),
            joined_at_ms=(at * 1000) or int(now * 1000),
        )
        if agent_name is not None or on_behalf:
            info.kind = AGENT_KIND
        if agent_name is not None:  # livekit-server sets one, the agents framework the other
            info.attributes["lk.agent_name"] = info.attributes["lk.agent.name"] = agent_name
        if on_behalf:
            info.attributes["lk.publish_on_behalf"] = on_behalf
        if caller:
            info.kind = models.ParticipantInfo.SIP
            info.attributes["sip.callID"] = sid_for("SCL_", caller + identity)  # what a transfer needs
            info.attributes["sip.phoneNumber"] = caller
            info.attributes["sip.callStatus"] = "active"
        self.rooms[room][identity] = info
        self.presence.append(Presence(now, room, identity, agent_name or "", True))
        self._joined(room, info)
        if dispatch_id:
            self._served(room, dispatch_id, identity)
        return [*webhooks, ("participant_joined", {"participant": _protojson(info)})]

    def set_state(self, room: str, identity: str, state: str) -> None:
        """The agent publishes its `lk.agent.state` (`agent_states.py`): no webhook, only listings show it."""
        info = self.rooms.get(room, {}).get(identity)
        if info is not None:
            info.attributes[AGENT_STATE] = state

    def play_states(self, room: str, identity: str, states: States) -> None:
        """The agent goes through `states` (`(seconds from now, state)` pairs) while it is in the room."""
        generation = self._generation.get(room)
        for after, state in states:

            def change(state: str = state) -> None:
                if self._alive(room, generation):
                    self.set_state(room, identity, state)

            if after <= 0:
                change()
            else:
                self._later(after, change)

    def publish(self, room: str, identity: str, track: str = "") -> list[Webhook]:
        """The participant publishes an audio track (`track`, default `TR_<identity>`, opaque for a caller);
        returns its `track_published` (which carries only the participant's sid and identity, as the
        server's)."""
        tracks = self.tracks.setdefault((room, identity), [])
        # (a caller's track gets an opaque sid, as any real one: its identity holds the number)
        track = track or sid_for("TR_", identity) + (f"_{len(tracks)}" if tracks else "")
        tracks.append(track)
        who = {"sid": sid_for("PA_", identity), "identity": identity}
        return [("track_published", {"participant": who, "track": {"sid": track, "source": "MICROPHONE"}})]

    def leave(self, room: str, identity: str, *, reason: str = "CLIENT_INITIATED") -> list[Webhook]:
        """The participant leaves (`reason`: a `DisconnectReason` name). Returns the webhooks the server
        sends for it: `track_unpublished` for each of its tracks, then `participant_left`; none if it was
        not there."""
        info = self.rooms.get(room, {}).pop(identity, None)
        if info is None:
            return []
        gone = self.tracks.pop((room, identity), [])
        who = {"sid": info.sid, "identity": identity}
        webhooks: list[Webhook] = [
            ("track_unpublished", {"participant": who, "track": {"sid": t}}) for t in gone
        ]
        info.state = models.ParticipantInfo.DISCONNECTED
        info.disconnect_reason = models.DisconnectReason.Value(reason)  # type: ignore[assignment]
        name = info.attributes.get("lk.agent_name", "") if info.kind == AGENT_KIND else ""
        self.presence.append(Presence(self._now(), room, identity, name, False))
        self._left(room, info)
        return [*webhooks, ("participant_left", {"participant": _protojson(info)})]

    def crash(self, room: str, identity: str) -> None:
        """The participant's process dies without a word: it stays listed `crash_timeout` seconds, then
        the server drops it (webhooks with CONNECTION_TIMEOUT, sent by the stand-in). A job it served
        stays JS_RUNNING, and nothing re-dispatches it."""
        generation = self._generation.get(room)

        def timed_out() -> None:
            if self._generation.get(room) == generation:
                self._announce(room, self.leave(room, identity, reason="CONNECTION_TIMEOUT"))

        self._later(self.crash_timeout, timed_out)

    def close_room(self, room: str, *, reason: str = "ROOM_DELETED") -> list[Webhook]:
        """The room ends (DeleteRoom, or the last one left): anyone still there leaves with `reason`
        (ROOM_DELETED; ROOM_CLOSED when the server closes an idle room), its dispatches go; returns those
        webhooks and `room_finished`."""
        if room not in self.rooms:
            return []
        webhooks = [w for who in list(self.rooms[room]) for w in self.leave(room, who, reason=reason)]
        del self.rooms[room]
        self._room_closed(room)
        return [*webhooks, ("room_finished", {})]

    def agents_in(self, room: str) -> list[str]:
        return [i for i, p in self.rooms.get(room, {}).items() if p.kind == AGENT_KIND]

    def copies(self, room: str, agent_name: str) -> int:
        """How many agents named `agent_name` are in the room now."""
        return sum(
            1
            for p in self.rooms.get(room, {}).values()
            if p.kind == AGENT_KIND and p.attributes.get("lk.agent_name") == agent_name
        )

    def doubled(self, room: str, agent_name: str) -> list[tuple[float, float]]:
        """The spans (start, end; end = now if it lasts) during which two or more agents named
        `agent_name` were in the room together: the promise Warden keeps is that there are none."""
        spans: list[tuple[float, float]] = []
        here, since = 0, 0.0
        for p in self.presence:
            if p.room != room or p.agent_name != agent_name:
                continue
            before = here
            here += 1 if p.joined else -1
            if before < 2 <= here:
                since = p.at
            elif here < 2 <= before:
                spans.append((since, p.at))
        return [*spans, (since, self._now())] if here >= 2 else spans

    # --- what the stand-in does of its own doing ------------------------------------------------

    def _remove(self, room: str, identity: str) -> bool:
        """Take the participant out, as the server does (PARTICIPANT_REMOVED), announcing it; was it
        there?"""
        webhooks = self.leave(room, identity, reason="PARTICIPANT_REMOVED")
        self._announce(room, webhooks)
        if webhooks and self.on_remove is not None:
            self.on_remove(room, identity)
        return bool(webhooks)

    def _alive(self, room: str, generation: int | None) -> bool:
        """Is the room still the incarnation a timer was set in?"""
        return room in self.rooms and self._generation.get(room) == generation

    # (what the other parts do when rooms come and go, people join and leave, an agent serves a dispatch)
    def _joined(self, room: str, info: models.ParticipantInfo) -> None:
        """`info` joined the room."""

    def _left(self, room: str, info: models.ParticipantInfo) -> None:
        """`info` left the room."""

    def _room_info(self, room: str) -> models.Room:
        """The room as RoomService answers it (ListRooms, CreateRoom)."""
        return models.Room(name=room, sid=room_sid(room))

    def _room_created(self, room: str, agents: Sequence[str | RoomAgentDispatch]) -> None:
        """The room started with `agents` configured (none: the automatic dispatch)."""

    def _room_closed(self, room: str) -> None:
        """The room ended: its dispatches go."""

    def _served(self, room: str, dispatch_id: str, identity: str) -> None:
        """An agent a test brought serves `dispatch_id`."""

    # --- Twirp: RoomService ---------------------------------------------------------------------

    def _room(self, name: str) -> dict[str, models.ParticipantInfo]:
        if name not in self.rooms:
            raise TwirpFailure("not_found", "requested room does not exist")
        return self.rooms[name]

    def _ListParticipants(self, req: rs.ListParticipantsRequest) -> rs.ListParticipantsResponse:
        # livekit-server answers for a room it does not have with an empty list, not `not_found`; it
        # lists each participant with the tracks it publishes
        listed = []
        for identity, info in self.rooms.get(req.room, {}).items():
            shown = models.ParticipantInfo()
            shown.CopyFrom(info)
            for track in self.tracks.get((req.room, identity), []):
                shown.tracks.add(sid=track, type=models.TrackType.AUDIO, source=models.TrackSource.MICROPHONE)
            listed.append(shown)
        return rs.ListParticipantsResponse(participants=listed)

    def _RemoveParticipant(self, req: rs.RoomParticipantIdentity) -> rs.RemoveParticipantResponse:
        if req.identity not in self._room(req.room):
            raise TwirpFailure("not_found", "participant does not exist")  # [real]
        self._remove(req.room, req.identity)
        return rs.RemoveParticipantResponse()

    def _ListRooms(self, req: rs.ListRoomsRequest) -> rs.ListRoomsResponse:
        names = [n for n in self.rooms if not req.names or n in req.names]
        return rs.ListRoomsResponse(rooms=[self._room_info(n) for n in names])


def _protojson(info: models.ParticipantInfo) -> dict[str, Any]:
    """The participant as a webhook carries it: protojson, zero values left out."""
    return MessageToDict(info)

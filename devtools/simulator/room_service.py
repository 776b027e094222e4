"""RoomService's `CreateRoom` and `DeleteRoom` in the stand-in LiveKit, and the server closing a room it
created that stays empty, as livekit-server v1.13.5 does (source `pkg/service/roomservice.go`,
`pkg/service/roommanager.go`, `pkg/rtc/room.go`; measured in the lab, `/work/lk-lab/results/
20261207-canary-rooms`):

- `CreateRoom` (grant `roomCreate`) starts the room and sends `room_started` at once; the room has the
  request's `empty_timeout` and `departure_timeout` (0: the server's defaults, 300 s and 20 s), its
  `metadata`, and its `agents` as dispatches (none: the automatic empty-name dispatch). On a room that
  exists it answers that room unchanged (same sid, its own timeouts and metadata) and sends nothing.
- `DeleteRoom` (grant `roomCreate`): everyone in the room leaves with ROOM_DELETED (`track_unpublished`
  first for their tracks, then `participant_left`), then `room_finished`; it answers an empty
  `DeleteRoomResponse`. A room the server does not have: 404 `not_found`, "requested room does not
  exist" (also a room just deleted).
- A room `CreateRoom` made is closed by the server when nobody but agents (and egress) is in it: when no
  one else has ever joined, `empty_timeout` after it was created — **even with an agent in it**; after
  someone has joined, `departure_timeout` after the last one left. Those left (agents) leave with
  ROOM_CLOSED, then `room_finished`. The server checks every second on whole seconds (closing up to a
  second later); the stand-in closes it on the dot, on its clock. Rooms started any other way (a join,
  a `CreateDispatch`) are closed only by the test (`close_room`) or `DeleteRoom`, as before.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from livekit.protocol import models
from livekit.protocol import room as rs

from devtools.simulator.base import TwirpFailure, room_sid
from devtools.simulator.dispatch import Dispatches

EMPTY_TIMEOUT = 300  # livekit-server's default `room.empty_timeout` (pkg/config/config.go)
DEPARTURE_TIMEOUT = 20  # its default `room.departure_timeout`
DEPENDENT = (models.ParticipantInfo.AGENT, models.ParticipantInfo.EGRESS)  # they do not keep a room open


@dataclass
class RoomService(Dispatches):
    created_rooms: dict[str, models.Room] = field(default_factory=dict)  # live rooms CreateRoom made
    _created_at: dict[str, float] = field(default_factory=dict)  # on the stand-in's clock
    _first_joined: dict[str, float] = field(default_factory=dict)  # by someone who is not an agent
    _last_left: dict[str, float] = field(default_factory=dict)

    def _room_info(self, room: str) -> models.Room:
        made = self.created_rooms.get(room)
        if made is None:
            return super()._room_info(room)
        shown = models.Room()
        shown.CopyFrom(made)
        return shown

    # --- Twirp ----------------------------------------------------------------------------------

    def _CreateRoom(self, req: rs.CreateRoomRequest) -> models.Room:
        if req.name in self.rooms:
            return self._room_info(req.name)
        now = self._now()
        self.created_rooms[req.name] = models.Room(
            sid=room_sid(req.name),
            name=req.name,
            empty_timeout=req.empty_timeout or EMPTY_TIMEOUT,
            departure_timeout=req.departure_timeout or DEPARTURE_TIMEOUT,
            metadata=req.metadata,
            creation_time=int(now),
            creation_time_ms=int(now * 1000),
        )
        self._created_at[req.name] = now
        self._announce(req.name, self.start_room(req.name, agents=list(req.agents)))
        self._check_idle(req.name, now + self.created_rooms[req.name].empty_timeout)
        return self._room_info(req.name)

    def _DeleteRoom(self, req: rs.DeleteRoomRequest) -> rs.DeleteRoomResponse:
        if req.room not in self.rooms:
            raise TwirpFailure("not_found", "requested room does not exist")
        self._announce(req.room, self.close_room(req.room))
        return rs.DeleteRoomResponse()

    # --- the idle close ---------------------------------------------------------------------------

    def _joined(self, room: str, info: models.ParticipantInfo) -> None:
        if info.kind not in DEPENDENT:
            self._first_joined.setdefault(room, self._now())

    def _left(self, room: str, info: models.ParticipantInfo) -> None:
        self._last_left[room] = now = self._now()  # anyone's leaving counts, an agent's too (as the server)
        made = self.created_rooms.get(room)
        if made is not None:
            self._check_idle(room, now + made.departure_timeout)

    def _room_closed(self, room: str) -> None:
        super()._room_closed(room)
        for kept in (self.created_rooms, self._created_at, self._first_joined, self._last_left):
            kept.pop(room, None)

    def _check_idle(self, room: str, when: float) -> None:
        generation = self._generation.get(room)
        self.clock.call_at(when, lambda: self._close_if_idle(room, generation))

    def _close_if_idle(self, room: str, generation: int | None) -> None:
        """The server's `CloseIfEmpty`: close the room if only agents are in it and its timeout is up."""
        made = self.created_rooms.get(room)
        if made is None or not self._alive(room, generation):
            return
        if any(p.kind not in DEPENDENT for p in self.rooms[room].values()):
            return  # someone is in: the last to leave checks again
        if room in self._first_joined and room in self._last_left:
            due = self._last_left[room] + made.departure_timeout
        else:
            due = self._created_at[room] + made.empty_timeout
        if self._now() < due - 1e-6:
            self._check_idle(room, due)
            return
        self._announce(room, self.close_room(room, reason="ROOM_CLOSED"))

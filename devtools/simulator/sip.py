"""SIP's `TransferSIPParticipant` and RoomService's `SendData` in the stand-in LiveKit, as livekit-server
v1.13.5 (`pkg/service/sip.go`, `pkg/service/roomservice.go`) with livekit/sip's bridge answers them,
checked against the lab's built server (issue 27; no SIP bridge runs there):

- `TransferSIPParticipant` needs the `sip.call` grant *and* `roomAdmin` for the room (livekit-api sends
  both); without either the server answers 401 `unauthenticated`, "permissions denied" [real]. An empty
  room name or identity: 400 `invalid_argument`. A participant (or room) the server does not have: 404
  `not_found`, "participant does not exist" [real]. A participant with no `sip.callID` attribute (a
  person on the web, an agent): 400 `invalid_argument`, "no SIP session associated with participant"
  [real]. With no SIP bridge at all the server answers 503 after ~1 s [real] (`sip_bridge=False`).
- A transfer the bridge carries out answers when the far end took the call (an empty body in v1.13.5:
  livekit-api reads it as a `TransferSIPParticipantResponse` whose `status` is the zero value,
  STS_TRANSFER_ONGOING — not a failure); the bridge then hangs up within `transfer_hangup` (its
  `referByeTimeout`, 1 s): the caller leaves the room as any client that hangs up does, with
  CLIENT_INITIATED (`track_unpublished` first, then `participant_left`, sent by the stand-in). A second
  request for the same call and target while the caller is still there answers the same (the bridge
  resumes the pending transfer); for another target: 400 "call already being transferred elsewhere".
- A transfer the far end refuses (`reject_transfer(486)`): the SIP status as a Twirp error (503
  `unavailable` for busy/unavailable, with `sip_status_code` and `sip_status` in its meta, which
  livekit-api raises as `SipCallError`); the caller stays in the room.
- `SendData` needs `roomAdmin` for the room; a nonce (livekit-api sends a 16-byte one) of another length:
  400. A room the server does not have: 503 `unavailable`, "no response from servers", after ~3 s
  [real] (the same wait as ListDispatch's, `missing_room_wait`). Otherwise it answers at once, also for
  destination identities nobody has [real]; whoever is in the room (of those named, if any) gets it.

Tests read `transfers` (every transfer the bridge took, in order, with its outcome) and `messages[room]`
(every message sent to the room, in order); `notices(room)` decodes Warden's `warden.status` ones.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from livekit.protocol import models, sip
from livekit.protocol import room as rs

from devtools.simulator.base import TwirpFailure
from devtools.simulator.rooms import Rooms

TRANSFER_HANGUP = (
    1.0  # livekit/sip hangs up this long after a transfer, if the far end has not (referByeTimeout)
)
NO_BRIDGE_WAIT = 1.0  # with no SIP bridge the server answers 503 after this long [real]
SIP_CALL_ID = "sip.callID"
REASONS = {486: "Busy Here", 480: "Temporarily Unavailable", 403: "Forbidden", 404: "Not Found"}


@dataclass(frozen=True)
class Transfer:
    """A transfer the SIP bridge took: the caller `identity` in `room` to `transfer_to`."""

    at: float
    room: str
    identity: str
    transfer_to: str
    play_dialtone: bool
    ok: bool  # the far end took the call (False: it refused, see `reject_transfer`)


@dataclass(frozen=True)
class DataMessage:
    """A message `SendData` delivered to `room`: `to` is who was there to get it."""

    at: float
    room: str
    data: bytes
    kind: int  # models.DataPacket.Kind: RELIABLE 0, LOSSY 1
    topic: str
    destinations: tuple[str, ...]  # as asked (none: everyone)
    to: tuple[str, ...]

    def json(self) -> Any:
        return json.loads(self.data)


@dataclass
class SipAndData(Rooms):
    transfers: list[Transfer] = field(default_factory=list)
    messages: dict[str, list[DataMessage]] = field(default_factory=dict)  # room -> in the order sent
    transfer_hangup: float = TRANSFER_HANGUP
    sip_bridge: bool = True  # False: no SIP bridge is connected (a server without livekit/sip)
    _rejections: list[int] = field(default_factory=list)  # SIP statuses of the next transfers' far ends
    _transferring: dict[tuple[str, str], str] = field(default_factory=dict)  # (room, identity) -> target

    # --- the world, as tests arrange it -------------------------------------------------------

    def reject_transfer(self, sip_status: int = 486, *, times: int = 1) -> None:
        """The far end of the next `times` transfers refuses the call with `sip_status` (486 Busy Here)."""
        self._rejections.extend([sip_status] * times)

    def transferred(self, room: str | None = None) -> list[tuple[str, str, str]]:
        """The transfers carried out (room, caller identity, target), in order."""
        return [
            (t.room, t.identity, t.transfer_to) for t in self.transfers if t.ok and room in (None, t.room)
        ]

    def notices(self, room: str, topic: str = "warden.status") -> list[Any]:
        """The JSON of each message on `topic` sent to `room`, in order."""
        return [m.json() for m in self.messages.get(room, []) if m.topic == topic]

    # --- Twirp: SIP -----------------------------------------------------------------------------

    def _TransferSIPParticipant(
        self, req: sip.TransferSIPParticipantRequest
    ) -> sip.TransferSIPParticipantResponse:
        info = self.rooms.get(req.room_name, {}).get(req.participant_identity)
        if info is None:
            raise TwirpFailure("not_found", "participant does not exist")
        if SIP_CALL_ID not in info.attributes:
            raise TwirpFailure("invalid_argument", "no SIP session associated with participant")
        if not self.sip_bridge:
            raise TwirpFailure("unavailable", "no response from servers")
        key = (req.room_name, req.participant_identity)
        pending = self._transferring.get(key)
        if pending is not None:
            if pending != req.transfer_to:
                raise TwirpFailure("invalid_argument", "call already being transferred elsewhere")
            return sip.TransferSIPParticipantResponse()  # the same transfer, resumed
        refused = self._rejections.pop(0) if self._rejections else 0
        self.transfers.append(
            Transfer(self._now(), *key, req.transfer_to, req.play_dialtone, ok=not refused)
        )  # fmt: skip
        if refused:
            reason = REASONS.get(refused, "Rejected")
            raise TwirpFailure(
                "unavailable" if refused in (480, 486, 503, 600, 603) else "invalid_argument",
                f"sip status {refused}: {reason}",
                meta={"sip_status_code": str(refused), "sip_status": reason},
            )
        self._transferring[key] = req.transfer_to
        generation = self._generation.get(req.room_name)

        def hang_up() -> None:
            self._transferring.pop(key, None)
            if self._alive(req.room_name, generation):
                self._announce(req.room_name, self.leave(*key))  # CLIENT_INITIATED, as any hang-up

        self._later(self.transfer_hangup, hang_up)
        return sip.TransferSIPParticipantResponse()  # v1.13.5 answers google.protobuf.Empty: no fields

    # --- Twirp: RoomService.SendData --------------------------------------------------------------

    def _SendData(self, req: rs.SendDataRequest) -> rs.SendDataResponse:
        if len(req.nonce) not in (0, 16):
            raise TwirpFailure(
                "invalid_argument", f"nonce should be 16-bytes or not present, got: {len(req.nonce)} bytes"
            )
        if req.room not in self.rooms:
            raise TwirpFailure("unavailable", "no response from servers")  # after `missing_room_wait`
        wanted = tuple(req.destination_identities)
        present = [i for i, p in self.rooms[req.room].items() if p.state == models.ParticipantInfo.ACTIVE]
        to = tuple(i for i in present if not wanted or i in wanted)
        message = DataMessage(self._now(), req.room, req.data, int(req.kind), req.topic, wanted, to)
        self.messages.setdefault(req.room, []).append(message)
        return rs.SendDataResponse()

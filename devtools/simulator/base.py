"""What every part of the stand-in LiveKit shares: its key, its clock, how it announces what it does on its
own (`on_webhook`), its Twirp errors, and the sids it gives rooms and participants."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from devtools.simulator.clock import Clock, RealClock, Timer
from workers.core.personal import mask_phone

STATUS = {
    "invalid_argument": 400,
    "not_found": 404,
    "unauthenticated": 401,
    "permission_denied": 403,
    "unavailable": 503,
    "internal": 500,
}

# One webhook as the stand-in describes it: the event's name and its fields beside `room` (`participant`,
# `track`), protojson-shaped, for `devtools.simulator.webhooks.body` to wrap, sign and send.
Webhook = tuple[str, dict[str, Any]]
# Told each webhook the stand-in sends of its own doing: (event, room name, fields).
WebhookSink = Callable[[str, str, dict[str, Any]], None]


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
    def __init__(
        self, code: str, msg: str, status: int | None = None, *, meta: dict[str, str] | None = None
    ) -> None:
        super().__init__(msg)
        self.code, self.msg, self.status = code, msg, status or STATUS[code]
        self.meta = meta or {}


@dataclass
class Base:
    key: str
    secret: str
    # `RealClock` (wall time, asyncio timers) or a `ManualClock` a test moves
    clock: Clock = field(default_factory=RealClock)
    # Told every webhook livekit-server would send of its own doing (a room CreateDispatch created, an agent
    # its workers brought, a participant it removed or timed out). What a test does itself (`join`,
    # `leave`, `publish`) is returned to the test as webhooks to send, as the tests always did.
    on_webhook: WebhookSink | None = None
    webhooks: list[tuple[float, str, str, dict[str, Any]]] = field(default_factory=list)  # sent: at, ...

    def _now(self) -> float:
        return self.clock()

    def _later(self, delay: float, callback: Callable[[], None]) -> Timer:
        return self.clock.call_at(self._now() + delay, callback)

    def _announce(self, room: str, webhooks: list[Webhook]) -> None:
        """Send webhooks of the stand-in's own doing (recorded in `webhooks`, whoever listens)."""
        for event, fields in webhooks:
            self.webhooks.append((self._now(), event, room, fields))
            if self.on_webhook is not None:
                self.on_webhook(event, room, fields)

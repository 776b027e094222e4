"""The actions that protect the person while an agent cannot be brought back (`workers.core.fallback`).
Notices: written to the outbox with the decision, carried out once (`workers.jobs.rooms.protect`).
None carries a transfer target: it is personal data, read from the rules when the transfer is made."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

STATUS_TOPIC = "warden.status"


class Protection(StrEnum):
    """What Warden did for an agent's people while it could not be brought back (`workers.core.fallback`)."""

    NONE = "none"
    FALLBACK_AGENT = "fallback_agent"  # another agent dispatched in its place
    TRANSFERRED = "transferred"  # the SIP caller transferred to people


@dataclass(frozen=True)
class DispatchFallback:
    """Dispatch `fallback_agent` to the room in place of `agent`, with metadata naming them and why."""

    agent: str
    fallback_agent: str
    reason: str


@dataclass(frozen=True)
class TransferCaller:
    """Transfer the room's SIP caller to the rules' `fallback_transfer_to` (play a dial tone)."""

    agent: str
    reason: str


@dataclass(frozen=True)
class RemoveFallback:
    """`agent` came after all: remove the fallback agent `fallback_agent` from the room."""

    agent: str
    fallback_agent: str


@dataclass(frozen=True)
class SendStatus:
    """Tell the room (a reliable data message on topic `warden.status`) how `agent`'s recovery stands."""

    agent: str
    state: str
    since: float


# Every action that protects the person: notices of the outbox, carried out by `workers.jobs.rooms.protect`.
Protecting = DispatchFallback | TransferCaller | RemoveFallback | SendStatus

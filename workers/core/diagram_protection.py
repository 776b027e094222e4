"""The protection diagram's samples (`workers.core.diagram` draws it): the `fallback.PROTECTION` rule of
every (protection, need) pair on a waiting room's part in that protection, in a web room and in a SIP
room, with a fallback agent and a transfer target both set. An edge wherever the protection changed."""

from __future__ import annotations

from dataclasses import replace
from enum import StrEnum

from workers.core.fallback import PROTECTION, Need
from workers.core.room import AgentView, Person, Phase, Policy, Room
from workers.core.rules import SETTING

POLICY = Policy("notetaker", fallback_agent="apology", fallback_transfer_to="tel:+15550100")
WAITING = Room(
    "RM_sample",
    "sample",
    people=(Person("alice", "PA_alice", 1),),
    watch=None,
    views=(AgentView("notetaker", (SETTING,), Phase.WAITING, waiting_since=1),),
)
ROOMS = {"web": WAITING, "sip": replace(WAITING, sip=True)}


def protection_start() -> StrEnum:
    """Where every part starts: the table's first state."""
    return next(iter(PROTECTION))[0]


def protection_edges() -> list[tuple[StrEnum, StrEnum, StrEnum, str]]:
    """(from, to, need, which room) for every sample that changes a part's protection."""
    found: list[tuple[StrEnum, StrEnum, StrEnum, str]] = []
    for state in dict.fromkeys(state for state, _ in PROTECTION):  # in the table's order
        for need in Need:
            for what, room in ROOMS.items():
                view = replace(room.views[0], fallback=state)
                after = PROTECTION[(state, need)](view, room, POLICY, "failed").fallback
                if after != state:
                    found.append((state, after, need, what if need is Need.CANNOT_COME_BACK else ""))
    return found

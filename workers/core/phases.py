"""The room state machine's enumerations: an agent's phase, what Warden is doing about it, why a deadline
was set (`workers.core.room` holds the values that use them)."""

from __future__ import annotations

from enum import StrEnum


class Phase(StrEnum):
    """Who is in the room, as one expected agent sees it (`presence.phase_of`); NO_AGENT_EXPECTED only
    for the room as a whole (`presence.room_phase`): people are there, and LiveKit was asked and named
    no agent for it."""

    IDLE = "idle"
    WAITING = "waiting"
    AGENT_PRESENT = "agent_present"
    AGENT_ACTIVE = "agent_active"
    AGENT_LOST = "agent_lost"
    CLOSED = "closed"
    NO_AGENT_EXPECTED = "no_agent_expected"


class Recovery(StrEnum):
    """What Warden is doing about one expected agent of the room."""

    NONE = "none"  # watching (a deadline may be set)
    CHECKING = "checking"  # a deadline passed; asking LiveKit who is there
    EVICTING = "evicting"  # removing a stalled agent before re-dispatching
    REDISPATCHING = "redispatching"  # deleting stale dispatches and creating a new one
    FAILED = "failed"  # re-dispatches exhausted or LiveKit refused: escalated, no more attempts


class Reason(StrEnum):
    """Why a deadline was set."""

    JOIN = "join"  # people arrived, no agent yet
    REJOIN = "rejoin"  # the agent left while people remain
    ACTIVE = "active"  # the agent joined but has not published or sent a heartbeat
    CONFIRM = "confirm"  # Warden re-dispatched; has the new agent arrived?
    DUPLICATE = "duplicate"  # two copies of the agent are in the room: the later one goes
    STUCK_INITIALIZING = "stuck_initializing"  # its `lk.agent.state` has stayed `initializing` too long
    STUCK_THINKING = "stuck_thinking"  # its `lk.agent.state` has stayed `thinking` too long
    BY_HAND = "by_hand"  # an operator asked for a re-dispatch now (`REDISPATCH_ASKED`)

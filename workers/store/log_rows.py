"""The rows of the event log (`events`): one per event Warden received or made, and one per decided
action beside the event that caused it (`kind = "action"`, never folded)."""

from __future__ import annotations

from typing import Any

from workers.core.events import Event, to_dict
from workers.core.observing import carried_out
from workers.core.room import Action, action_to_dict

ACTION_KIND = "action"

Decided = list[tuple[Event, float, tuple[Action, ...]]]


def event_row(event: Event, received_at: float) -> dict[str, Any]:
    """The event log's row for `event`."""
    return {
        "event_id": event.id,
        "room_sid": event.room_sid or None,
        "kind": str(event.kind),
        "name": event.name,
        "participant_identity": event.participant.identity if event.participant else None,
        "created_at": event.created_at,
        "received_at": received_at,
        "data": to_dict(event),
    }


def action_rows(decided: Decided, *, observe: bool = False) -> list[dict[str, Any]]:
    """Decisions go into the room's log beside the events that caused them (never folded), each saying
    whether it is carried out (`observe`: observe mode, whose decisions that act are not)."""
    return [
        {
            "event_id": f"{event.id}#{i}",
            "room_sid": event.room_sid,
            "kind": ACTION_KIND,
            "name": type(action).__name__,
            "participant_identity": None,
            "created_at": event.created_at,
            "received_at": received_at,
            "data": {**action_to_dict(action), "carried_out": carried_out(action, observe)},
        }
        for event, received_at, actions in decided
        for i, action in enumerate(actions)
    ]

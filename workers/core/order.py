"""The order a room's events apply in (rule 5 of `workers.core.machine`): webhooks by LiveKit's second,
then arrival; each of Warden's own events at the second of the newest webhook before it, so it never
makes a webhook late. Pure, like the machine.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from workers.core.events import INTERNAL_KINDS, Event, EventKind

# Within one second, the order a participant's (and the room's) life goes through: used to put back in
# order a room's webhooks that reach the store together, never to make one late (rule 5).
LIFECYCLE_RANK: Mapping[EventKind, int] = {
    EventKind.ROOM_STARTED: 0,
    EventKind.AGENT_JOB_PENDING: 1,
    EventKind.AGENT_JOB_STARTED: 1,
    EventKind.PARTICIPANT_JOINED: 2,
    EventKind.TRACK_PUBLISHED: 3,
    EventKind.TRACK_UNPUBLISHED: 4,
    EventKind.PARTICIPANT_LEFT: 5,
    EventKind.PARTICIPANT_CONNECTION_ABORTED: 5,
    EventKind.AGENT_JOB_ENDED: 6,
    EventKind.OTHER: 7,
    EventKind.ROOM_FINISHED: 8,
}


def lifecycle_key(event: Event) -> tuple[int, int]:
    """A webhook's second, then its place in a life within that second (`LIFECYCLE_RANK`)."""
    return (event.created_at, LIFECYCLE_RANK.get(event.kind, 7))


def is_webhook(event: Event) -> bool:
    """LiveKit's event (its `created_at` places it), not one of Warden's own."""
    return event.kind not in INTERNAL_KINDS


def second_at(kind: str, created_at: int, newest: int) -> int:
    """The second an event of `kind` stamped `created_at` applies at, after webhooks up to second
    `newest`: a webhook's own; one of Warden's own events', the newest webhook's before it (rule 5).
    (By kind and stamp, so that a timeline's stored entries are placed as their events were.)"""
    return newest if kind in INTERNAL_KINDS else created_at


def second_of(event: Event, newest: int) -> int:
    """`second_at` for an event."""
    return second_at(event.kind, event.created_at, newest)


def newest_after(newest: int, event: Event) -> int:
    """The newest webhook second once `event` is applied (Warden's own events leave it)."""
    return max(newest, second_of(event, newest))


def placed(events: Iterable[tuple[Event, float]], *, newest: int = -1) -> list[tuple[Event, float]]:
    """`(event, received_at)` pairs, given in arrival order (the log's), in the order they apply (rule 5):
    by second, then arrival. `newest`: the newest webhook second applied before the first of them."""
    keyed = []
    for arrival, (event, at) in enumerate(events):
        keyed.append((second_of(event, newest), arrival, event, at))
        newest = newest_after(newest, event)
    keyed.sort(key=lambda k: (k[0], k[1]))
    return [(event, at) for _, _, event, at in keyed]

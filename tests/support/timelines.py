"""A room and its timeline as the store finds them, for tests that unpack both."""

from __future__ import annotations

from workers.core.room import Room
from workers.store.queries import RoomLog, TimelineEntry


def logged(found: RoomLog | None) -> tuple[Room | None, list[TimelineEntry]]:
    """A room and its timeline as found (None and no entries: not found)."""
    return (found.room, found.timeline) if found is not None else (None, [])

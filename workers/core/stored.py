"""A room as its `rooms` row stores it (JSON), and back: this version's shape and the two before it.

This version stores `as_dict(room)`: who is there, the room's own `watch` (null once the agents it
expects are known) and one part per expected agent (`views`), read back by `plain.from_plain`. Rows
written before still load, and keep their meaning:

- a room with views (the previous version): the whole room's fields (its "base": who is there, and its
  own watch) beside `views`, each a whole room as one agent saw it, and `learned`. Who is there is the
  base's; each view keeps its agent's part (the rest of its fields are the room's, left out); the base
  is the watch until `learned`; deadline numbers go on from the highest any of them had;
- a single room (before views existed), watched for `WARDEN_AGENT_NAME` (`legacy_agent`: its part
  now, as if the setting had named it) or, with no agent configured, for any agent (the room's own
  watch, as it was).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from workers.core.plain import as_dict, from_plain
from workers.core.room import AgentView, Room
from workers.core.rules import SETTING


def to_dict(room: Room) -> dict[str, Any]:
    """Plain JSON-able form of a room, for its row."""
    return as_dict(room)


def from_dict(data: dict[str, Any], *, legacy_agent: str = "") -> Room:
    """Inverse of `to_dict`, also of what the two versions before stored (see the module's doc)."""
    room = from_plain(Room, data)  # an older row's own fields that are no longer the room's are left out
    if "watch" in data:
        return room
    part = from_plain(AgentView, data)  # the room's own fields: its watch's part, or its one agent's
    if "views" in data:
        highest = max([room.attempt, *(view.get("attempt", 0) for view in data["views"])])
        return replace(room, attempt=highest, watch=None if data.get("learned") else part)
    if legacy_agent:
        return replace(room, watch=None, views=(replace(part, agent=legacy_agent, sources=(SETTING,)),))
    return replace(room, watch=part)

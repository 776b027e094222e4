"""A room as its `rooms` row stores it (JSON), and back: this version's shape and the two before it.

This version stores `as_dict(room)`: who is there, the room's own `watch` (null once the agents it
expects are known) and one part per expected agent (`views`). Rows written before still load, and keep
their meaning:

- a room with views (the previous version): the whole room's fields (its "base": who is there, and its
  own watch) beside `views`, each a whole room as one agent saw it, and `learned`. Who is there is the
  base's; each view keeps its agent's part; the base is the watch until `learned`; the deadline
  numbers go on from the highest any of them had;
- a single room (before views existed), watched for `WARDEN_AGENT_NAME` (`legacy_agent`: its part
  now, as if the setting had named it) or, with no agent configured, for any agent (the room's own
  watch, as it was).
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any

from workers.core.plain import as_dict
from workers.core.room import Agent, AgentView, Deadline, Person, Phase, Reason, Recovery, Room
from workers.core.rules import SETTING

_VIEW_FIELDS = frozenset(f.name for f in fields(AgentView))


def to_dict(room: Room) -> dict[str, Any]:
    """Plain JSON-able form of a room, for its row."""
    return as_dict(room)


def from_dict(data: dict[str, Any], *, legacy_agent: str = "") -> Room:
    """Inverse of `to_dict`, also of what the two versions before stored (see the module's doc)."""
    if "watch" in data:
        watch = None if data["watch"] is None else _view(data["watch"])
        return _room(data, watch, [_view(v) for v in data["views"]])
    if "views" in data:
        views = [_view(v) for v in data["views"]]
        watch = None if data.get("learned") else _view(data)
        highest = max([data.get("attempt", 0), *(v.get("attempt", 0) for v in data["views"])])
        return _room({**data, "attempt": highest}, watch, views)
    if legacy_agent:
        return _room(data, None, [_view({**data, "agent": legacy_agent, "sources": (SETTING,)})])
    return _room(data, _view(data), [])


def _room(data: dict[str, Any], watch: AgentView | None, views: list[AgentView]) -> Room:
    return Room(
        data["sid"],
        data["name"],
        people=tuple(Person(**p) for p in data["people"]),
        agents=tuple(Agent(**a) for a in data["agents"]),
        started_at=data.get("started_at"),
        finished_at=data.get("finished_at"),
        first_person_at=data.get("first_person_at"),
        sip=bool(data.get("sip", False)),
        updated_at=data.get("updated_at", 0.0),
        attempt=data.get("attempt", 0),
        watch=watch,
        views=tuple(views),
    )


def _view(data: dict[str, Any]) -> AgentView:
    """One agent's part (from a whole room as one agent saw it, in older rows: its other fields are
    the room's); fields missing from older rows take their defaults."""
    deadline = data.get("deadline")
    return AgentView(
        **{
            **{k: v for k, v in data.items() if k in _VIEW_FIELDS},
            "phase": Phase(data.get("phase", Phase.IDLE)),
            "deadline": Deadline(deadline["attempt"], deadline["at"], Reason(deadline["reason"]))
            if deadline
            else None,
            "recovery": Recovery(data.get("recovery", Recovery.NONE)),
            "sources": tuple(data.get("sources", ())),
            "stale_dispatches": tuple(data.get("stale_dispatches", ())),
            "dispatch_attributes": tuple(tuple(kv) for kv in data.get("dispatch_attributes", ())),
        }
    )

"""The operator API: `GET /api/rooms` (newest first, paginated) and `GET /api/rooms/{name}`."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse

from service.auth import admin_only
from workers.events import ParticipantKind
from workers.queries import TimelineEntry, find_room, list_rooms
from workers.rooms import Room

MAX_LIMIT = 200


def iso(timestamp: float | None) -> str | None:
    """Unix seconds as an ISO 8601 UTC string (None stays None)."""
    if timestamp is None:
        return None
    return datetime.fromtimestamp(timestamp, UTC).isoformat().replace("+00:00", "Z")


def room_summary(room: Room) -> dict[str, Any]:
    return {
        "name": room.name,
        "sid": room.sid,
        "state": str(room.phase),
        "people": [
            {"identity": p.identity, "sid": p.sid, "joined_at": iso(p.joined_at)} for p in room.people
        ],
        "agents": [
            {
                "identity": a.identity,
                "sid": a.sid,
                "agent_name": a.name,
                "joined_at": iso(a.joined_at),
                "active_at": iso(a.active_at),
            }
            for a in room.agents
        ],
        "started_at": iso(room.started_at),
        "finished_at": iso(room.finished_at),
        "first_person_at": iso(room.first_person_at),
        "agent_joined_at": iso(room.agent_joined_at),
        "waiting_since": iso(room.waiting_since),
        "updated_at": iso(room.updated_at),
    }


def timeline_entry(entry: TimelineEntry) -> dict[str, Any]:
    event = entry.event
    participant = event.participant
    return {
        "id": event.id,
        "type": event.name,
        "participant": participant.identity if participant else None,
        "participant_kind": _kind_name(participant.kind) if participant else None,
        "track": event.track_sid or None,
        "created_at": iso(event.created_at),
        "received_at": iso(entry.received_at),
    }


def _kind_name(kind: int | None) -> str | None:
    if kind is None:
        return None
    try:
        return ParticipantKind(kind).name
    except ValueError:
        return str(kind)


def _int_param(request: Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query_params.get(name, str(default))
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise ValueError(f"'{name}' must be a whole number from {low} to {high}")
    return int(raw)


@admin_only
async def get_rooms(request: Request) -> JSONResponse:
    try:
        limit = _int_param(request, "limit", 50, 1, MAX_LIMIT)
        offset = _int_param(request, "offset", 0, 0, 10**9)
    except ValueError as exc:
        return JSONResponse({"error": str(exc)}, status_code=400)
    page = await list_rooms(request.state.engine, limit=limit, offset=offset)
    following = offset + limit
    return JSONResponse(
        {
            "rooms": [room_summary(room) for room in page.rooms],
            "total": page.total,
            "limit": limit,
            "offset": offset,
            "next": f"/api/rooms?limit={limit}&offset={following}" if following < page.total else None,
        }
    )


@admin_only
async def get_room(request: Request) -> JSONResponse:
    found = await find_room(request.state.engine, request.path_params["name"])
    if found is None:
        return JSONResponse({"error": "no such room"}, status_code=404)
    room, timeline = found
    return JSONResponse({**room_summary(room), "timeline": [timeline_entry(e) for e in timeline]})

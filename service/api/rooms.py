"""The operator API: `GET /api/rooms` (newest first, paginated, `?state=`) and `GET /api/rooms/{name}`."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse

from service.api.auth import admin_only
from workers.core.events import INTERNAL_KINDS, JobReason, JobStatus, ParticipantKind
from workers.core.personal import mask_identity, mask_phone
from workers.core.room import ROOM_STATES, AgentView, Policy, Room, time_to_agent
from workers.store.log_rows import ACTION_KIND
from workers.store.queries import TimelineEntry, confirmations, find_room, list_rooms

MAX_LIMIT = 200
PHASES = ROOM_STATES


def iso(timestamp: float | None) -> str | None:
    """Unix seconds as an ISO 8601 UTC string (None stays None)."""
    if timestamp is None:
        return None
    return datetime.fromtimestamp(timestamp, UTC).isoformat().replace("+00:00", "Z")


def room_summary(room: Room, confirmed_at: float | None = None) -> dict[str, Any]:
    """The room for the API: its state and recovery are those of its expected agent most in need
    (`expected` lists each, with where Warden learned of it); `confirmed_at`: when reconciliation last
    found it as Warden knows it. Phone numbers in names are masked, and in people's identities again
    (they were at intake, by the rules of the day: rooms kept from before a rule was widened are
    shown by today's). Values are otherwise as stored: whole, for clients that look rooms up by them."""
    shown = room.summary()
    return {
        "name": mask_phone(room.name),
        "sid": room.sid,
        "state": room.state(),
        "sip": room.sip,
        "expected": [_expected(room, v) for v in room.views],
        "expects": "learned" if room.learned else "not yet known",
        "people": [
            {"identity": mask_phone(p.identity), "sid": p.sid, "joined_at": iso(p.joined_at)}
            for p in room.people
        ],
        "people_unlisted": room.people_unlisted,
        "agents": [
            {
                "identity": a.identity,
                "sid": a.sid,
                "agent_name": a.name,
                "joined_at": iso(a.joined_at),
                "active_at": iso(a.active_at),
                "agent_state": a.state or None,
                "agent_state_since": iso(a.state_since),
            }
            for a in room.agents
        ],
        "started_at": iso(room.started_at),
        "finished_at": iso(room.finished_at),
        "first_person_at": iso(room.first_person_at),
        "agent_joined_at": iso(shown.agent_joined_at),
        "waiting_since": iso(shown.waiting_since),
        "updated_at": iso(room.updated_at),
        "confirmed_at": iso(confirmed_at),
        "recovery": _recovery(shown),
    }


def _recovery(view: AgentView) -> dict[str, Any]:
    return {
        "state": str(view.recovery),
        "deadline": None
        if view.deadline is None
        else {
            "attempt": view.deadline.attempt,
            "at": iso(view.deadline.at),
            "reason": str(view.deadline.reason),
        },
        # every re-dispatch of the room's timeline (a room stored before they were counted: this incident's)
        "redispatches": max(len(view.redispatched), view.redispatches),
        "dispatch_id": view.dispatch_id or None,
        "error": view.error or None,
    }


def _expected(room: Room, view: AgentView) -> dict[str, Any]:
    """One expected agent: its name, where Warden learned of it, whether it is there, its own state
    (`lk.agent.state`, of its first agent in the room that publishes one), what Warden does."""
    ours = Policy(agent_name=view.agent)
    stated = next((a for a in room.agents if ours.counts(a.name) and a.state), None)
    return {
        "agent_name": view.agent,
        "sources": list(view.sources),
        "state": str(view.phase),
        "agent_joined_at": iso(view.agent_joined_at),
        "time_to_agent": time_to_agent(room, view),
        "agent_state": stated.state if stated else None,
        "agent_state_since": iso(stated.state_since) if stated else None,
        "recovery": _recovery(view),
    }


def timeline_entry(entry: TimelineEntry) -> dict[str, Any]:
    """A log line for people: webhooks with their participant, Warden's facts and actions with details."""
    participant = entry.data.get("participant")
    participant = participant if isinstance(participant, dict) else {}
    line: dict[str, Any] = {
        "type": entry.name,
        "source": "action"
        if entry.kind == ACTION_KIND
        else "warden"
        if entry.kind in INTERNAL_KINDS
        else "livekit",
        "id": entry.data.get("id"),
        "participant": entry.participant and mask_identity(entry.participant, participant.get("kind")),
        "created_at": iso(entry.created_at),
        "received_at": iso(entry.received_at),
    }
    if entry.kind == ACTION_KIND:
        line["detail"] = {k: v for k, v in entry.data.items() if k != "action"}
        line["id"] = None
    elif entry.kind in INTERNAL_KINDS:
        line["detail"] = _fact_detail(entry.data.get("fact") or {})
    else:
        line["participant_kind"] = _kind_name(participant.get("kind"))
        line["track"] = entry.data.get("track_sid") or None
    return line


def _fact_detail(fact: dict[str, Any]) -> dict[str, Any]:
    detail: dict[str, Any] = {"attempt": fact.get("attempt"), "at": iso(fact.get("at"))}
    if fact.get("participants") is not None and fact.get("participants") != []:
        detail["participants"] = [p["identity"] for p in fact["participants"]]
    if fact.get("dispatches"):
        detail["dispatches"] = [
            {"id": d["id"], "agent_name": d["agent_name"], "jobs": _jobs(d)} for d in fact["dispatches"]
        ]
    for key in ("agent", "dispatch_id", "error", "by"):
        if fact.get(key):
            detail[key] = fact[key]
    if fact.get("room_exists") is False:
        detail["room_exists"] = False
    if fact.get("carried_out") is False:  # observe mode: the re-dispatch or removal was not made
        detail["carried_out"] = False
    return detail


def _jobs(dispatch: dict[str, Any]) -> list[str]:
    """A listed dispatch's jobs, each as its status, and LiveKit's reason and the worker that took it
    when it gave them: "PENDING (NO_CAPACITY)", "RUNNING on AW_1" (a fact from before issue 26: the
    statuses alone)."""
    if not dispatch.get("jobs"):
        return [_job_status(x) for x in dispatch.get("statuses", ())]
    lines = []
    for job in dispatch["jobs"]:
        line = _job_status(job.get("status", 0))
        if job.get("reason"):
            line += f" ({_job_reason(job['reason'])})"
        if job.get("worker_id"):
            line += f" on {job['worker_id']}"
        lines.append(line)
    return lines


def _job_reason(reason: int) -> str:
    try:
        return JobReason(reason).name
    except ValueError:
        return str(reason)


def _job_status(status: int) -> str:
    try:
        return JobStatus(status).name
    except ValueError:
        return str(status)


def _kind_name(kind: int | None) -> str | None:
    if kind is None:
        return None
    try:
        return ParticipantKind(kind).name
    except ValueError:
        return str(kind)


def int_param(request: Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query_params.get(name, str(default))
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise ValueError(f"'{name}' must be a whole number from {low} to {high}")
    return int(raw)


@admin_only
async def get_rooms(request: Request) -> JSONResponse:
    try:
        limit = int_param(request, "limit", 50, 1, MAX_LIMIT)
        offset = int_param(request, "offset", 0, 0, 10**9)
    except ValueError as exc:
        return JSONResponse({"error": str(exc)}, status_code=400)
    state = request.query_params.get("state") or None
    if state is not None and state not in PHASES:
        return JSONResponse({"error": f"'state' must be one of {', '.join(PHASES)}"}, status_code=400)
    page = await list_rooms(request.state.engine, limit=limit, offset=offset, phase=state)
    following = offset + limit
    more = f"&state={state}" if state else ""
    return JSONResponse(
        {
            "rooms": [room_summary(room, page.confirmed.get(room.sid)) for room in page.rooms],
            "total": page.total,
            "limit": limit,
            "offset": offset,
            "next": f"/api/rooms?limit={limit}&offset={following}{more}" if following < page.total else None,
        }
    )


@admin_only
async def get_room(request: Request) -> JSONResponse:
    shown = request.state.settings.warden_timeline_shown
    found = await find_room(request.state.engine, request.path_params["name"], shown=shown)
    if found is None:
        return JSONResponse({"error": "no such room"}, status_code=404)
    room = found.room
    confirmed = (await confirmations(request.state.engine, [room.sid])).get(room.sid)
    return JSONResponse(
        {
            **room_summary(room, confirmed),
            "timeline": [timeline_entry(e) for e in found.timeline],
            "timeline_earlier": found.earlier,
        }
    )

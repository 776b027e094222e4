"""The incidents API: `GET /api/incidents` (newest first, paginated) and `GET /api/incidents/{id}`."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse

from service.api.auth import admin_only
from service.api.rooms import int_param, iso
from workers.core.personal import mask_phone
from workers.store.incidents import Incident, get_incident, list_incidents


def incident_summary(incident: Incident) -> dict[str, Any]:
    recovered_in = (
        None if incident.resolved_at is None else round(incident.resolved_at - incident.opened_at, 3)
    )
    return {
        "id": incident.id,
        "agent_name": incident.agent_name,
        "state": "resolved" if incident.resolved_at is not None else "open",
        "reason": mask_phone(incident.reason),
        "opened_at": iso(incident.opened_at),
        "resolved_at": iso(incident.resolved_at),
        "time_to_recovery_seconds": recovered_in,
        "restarted_at": iso(incident.restarted_at),
        "rooms": len(incident.rooms),
        "rooms_waiting": incident.waiting_rooms,
        "kind": incident.kind,
        "worker_ids": [worker for worker, _ in incident.workers],
        "acknowledged_at": iso(incident.acknowledged_at),
        "acknowledged_by": incident.acknowledged_by or None,
        "in_maintenance": incident.maintenance,
    }


@admin_only
async def get_incidents(request: Request) -> JSONResponse:
    try:
        limit = int_param(request, "limit", 50, 1, 200)
        offset = int_param(request, "offset", 0, 0, 10**9)
    except ValueError as exc:
        return JSONResponse({"error": str(exc)}, status_code=400)
    found, total = await list_incidents(request.state.engine, limit=limit, offset=offset)
    return JSONResponse(
        {"incidents": [incident_summary(i) for i in found], "total": total, "limit": limit, "offset": offset}
    )


@admin_only
async def get_one_incident(request: Request) -> JSONResponse:
    incident = await get_incident(request.state.engine, request.path_params["id"])
    if incident is None:
        return JSONResponse({"error": "no such incident"}, status_code=404)
    return JSONResponse(
        {
            **incident_summary(incident),
            "rooms": [
                {"sid": sid, "name": mask_phone(name), "added_at": iso(added), "recovered_at": iso(recovered)}
                for sid, name, added, recovered in incident.rooms
            ],
            "actions": [
                {"at": iso(at), "action": action, "outcome": mask_phone(outcome), "carried_out": done}
                for at, action, outcome, done in incident.actions
            ],
        }
    )

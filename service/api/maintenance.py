"""The maintenance windows API: `POST /api/maintenance` starts a window over an agent (or `*`, every
agent) for some minutes, `GET /api/maintenance` lists the active ones and the recent ones (newest
first), `DELETE /api/maintenance/{id}` ends one early. While a window covers an agent, Warden restarts,
rolls back and calls the deploy hook for nothing of it and sends no alert for its incidents (recorded
"in maintenance"); its rooms are still re-dispatched (rule 12 of `workers.core.incident`).

Starting and ending are operator actions (`operator_only`), recorded with the caller's name (`by`);
what is asked is checked whole before anything is stored: a bad value is a 400 naming it."""

from __future__ import annotations

import json
import time
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse

from service.api.auth import admin_only, caller_name, operator_only
from service.api.rooms import iso
from service.request_body import BodyTooLarge, read_body
from workers.core import bounds
from workers.core.personal import mask_phone
from workers.store import maintenance
from workers.store.maintenance import REASON_CHARS, Window

MAX_BODY = 8192
MINUTES = (1, 10080)  # a minute to a week
LARGEST_ID = 2**31 - 1  # the id column's range


def window_summary(window: Window, now: float) -> dict[str, Any]:
    """A window as the API, the CLI and the dashboard show it."""
    return {
        "id": window.id,
        "agent": window.agent,
        "starts_at": iso(window.starts_at),
        "until": iso(window.until),
        "ended_at": iso(window.ended_at),
        "reason": mask_phone(window.reason),  # free text: a caller's number an operator wrote in
        "by": window.by,
        "active": window.active(now),
    }


def asked(data: Any) -> tuple[str, int, str] | str:
    """The window asked for (agent, minutes, reason), or what is wrong with it."""
    if not isinstance(data, dict):
        return 'send a JSON object: {"agent": "<name>" or "*", "minutes": 30, "reason": "..."}'
    unknown = sorted(set(data) - {"agent", "minutes", "reason"})
    if unknown:
        return f"unknown field(s): {', '.join(unknown)}"
    agent, minutes, reason = data.get("agent"), data.get("minutes"), data.get("reason", "")
    if not isinstance(agent, str) or not agent.strip():
        return 'agent: an agent\'s name, or "*" for every agent'
    problem = bounds.problem(agent, bounds.AGENT_NAME)
    if problem is not None or not agent.isprintable() or agent != agent.strip():
        return f"agent: {problem or 'holding control characters or surrounding spaces'}"
    if isinstance(minutes, bool) or not isinstance(minutes, int) or not MINUTES[0] <= minutes <= MINUTES[1]:
        return f"minutes: a whole number from {MINUTES[0]} to {MINUTES[1]} (a week)"
    if not isinstance(reason, str):
        return "reason: text"
    problem = bounds.problem(reason, REASON_CHARS)
    if problem is not None:
        return f"reason: {problem}"
    return agent, minutes, reason


async def start_window(request: Request, data: Any) -> Window | str:
    """Start the window `data` asks for, by the caller; what is wrong with it when nothing was stored."""
    found = asked(data)
    if isinstance(found, str):
        return found
    agent, minutes, reason = found
    return await maintenance.start(
        request.state.engine, agent, minutes * 60.0, reason, caller_name(request), time.time()
    )


@operator_only
async def post_maintenance(request: Request) -> JSONResponse:
    try:
        data = json.loads(await read_body(request, MAX_BODY))
    except BodyTooLarge:
        return JSONResponse({"error": f"body over {MAX_BODY} bytes"}, status_code=413)
    except ValueError:
        data = None
    window = await start_window(request, data)
    if isinstance(window, str):
        return JSONResponse({"error": window}, status_code=400)
    summary = window_summary(window, time.time())
    return JSONResponse(
        {key: summary[key] for key in ("id", "agent", "until", "reason", "by")}, status_code=201
    )


@admin_only
async def get_maintenance(request: Request) -> JSONResponse:
    now = time.time()
    windows = await maintenance.recent(request.state.engine, now)
    return JSONResponse({"windows": [window_summary(w, now) for w in windows]})


async def end_window(request: Request, window_id: str) -> Window | tuple[int, str]:
    """End window `window_id` now, or the 404/409 status and why (an id that is no number names none)."""
    known = window_id.isascii() and window_id.isdigit() and int(window_id) <= LARGEST_ID
    ended = await maintenance.end(request.state.engine, int(window_id), time.time()) if known else "unknown"
    if ended == "unknown":
        return 404, "no such maintenance window"
    if ended == "over":
        return 409, "that maintenance window is over already"
    return ended


@operator_only
async def delete_maintenance(request: Request) -> JSONResponse:
    ended = await end_window(request, request.path_params["id"])
    if isinstance(ended, tuple):
        status, error = ended
        return JSONResponse({"error": error}, status_code=status)
    return JSONResponse(window_summary(ended, time.time()))

"""The dashboard's maintenance windows: `/maintenance` lists them (active first to the eye, newest
first) with a form to start one and a button to end each active one; both are plain HTML forms POSTed
to `/maintenance` and `/maintenance/{id}/end`, operator actions as the API's are (`operator_only`),
answered with a redirect back to the list (or the list with what was wrong, 400/404/409). The banner
every page shows while a window is active is `base.html`'s (`service.dashboard.pages` reads them)."""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from service.api.auth import operator_only
from service.api.maintenance import MAX_BODY, end_window, start_window, window_summary
from service.dashboard.pages import TEMPLATES, page
from service.request_body import BodyTooLarge, read_body
from workers.store import maintenance


@page
async def maintenance_page(request: Request) -> Response:
    return await _listed(request)


@page
@operator_only
async def start_maintenance_form(request: Request) -> Response:
    try:
        body = await read_body(request, MAX_BODY)
    except BodyTooLarge:
        return await _listed(request, f"the form is over {MAX_BODY} bytes", 413)
    fields = dict(parse_qsl(body.decode("utf-8", errors="replace"), keep_blank_values=True))
    minutes: Any = fields.get("minutes", "").strip()
    asked = {
        "agent": fields.get("agent", "").strip(),
        "minutes": int(minutes) if minutes.isascii() and minutes.isdigit() else minutes,
        "reason": fields.get("reason", ""),
    }
    window = await start_window(request, asked)
    if isinstance(window, str):
        return await _listed(request, window, 400)
    return RedirectResponse("/maintenance", status_code=303)


@page
@operator_only
async def end_maintenance_form(request: Request) -> Response:
    ended = await end_window(request, request.path_params["id"])
    if isinstance(ended, tuple):
        status, error = ended
        return await _listed(request, error, status)
    return RedirectResponse("/maintenance", status_code=303)


async def _listed(request: Request, error: str = "", status: int = 200) -> Response:
    now = time.time()
    windows = [
        window_summary(w, now) | {"window": w} for w in await maintenance.recent(request.state.engine, now)
    ]
    return TEMPLATES.TemplateResponse(
        request,
        "maintenance.html",
        {"now": now, "windows": windows, "error": error, "active": "maintenance"},
        status_code=status,
    )

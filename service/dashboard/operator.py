"""The dashboard's buttons for what operators do by hand (issue 28): on `/incidents`, acknowledge and
restart each open incident; on a room's page, re-dispatch each expected agent. Each is a plain HTML form
POSTed to `/incidents/{id}/ack`, `/incidents/{id}/restart` or `/rooms/{name}/redispatch`, answered as
the API answers (`service.api.operator`, the same checks, the same `by`) and sent back to the page it
came from (303) with what happened in one line. Operators only (`operator_only`: a viewer's POST is
refused); the buttons are drawn for operators only (`is_operator` in the templates)."""

from __future__ import annotations

import json
from urllib.parse import parse_qs, quote, urlencode

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from service.api import operator
from service.api.auth import operator_only
from service.dashboard.pages import NO_FRAMING
from service.request_body import BodyTooLarge, read_body
from workers.core.shown import TEXT_CHARS, shown
from workers.store.queries import find_room

DONE = {"ack": "acknowledgement", "restart": "restart", "redispatch": "re-dispatch"}


def _back(to: str, answer: JSONResponse) -> Response:
    """Back to the page the form was on (303), saying what happened."""
    said = json.loads(bytes(answer.body))
    if answer.status_code == 202:
        line = f"{DONE[said['action']]} queued, as {said['by']}: it shows here once the worker applied it"
    else:
        line = f"refused: {said.get('error', answer.status_code)}"
    where, _, anchor = to.partition("#")
    target = f"{where}?{urlencode({'said': shown(line, TEXT_CHARS)})}" + (f"#{anchor}" if anchor else "")
    return RedirectResponse(target, status_code=303, headers=NO_FRAMING)


@operator_only
async def ack_form(request: Request) -> Response:
    incident_id = request.path_params["id"]
    return _back(f"/incidents#{incident_id}", await operator.acknowledge(request, incident_id))


@operator_only
async def restart_form(request: Request) -> Response:
    incident_id = request.path_params["id"]
    return _back(f"/incidents#{incident_id}", await operator.restart(request, incident_id))


@operator_only
async def redispatch_form(request: Request) -> Response:
    """The room's expected agent by its place in the room's list (`expected`: the page shows names
    masked and clipped, so it cannot send one back as it is)."""
    room = request.path_params["name"]
    back = f"/rooms/{quote(room, safe='')}"
    try:
        raw = await read_body(request, operator.MAX_BODY)
    except BodyTooLarge:
        return _back(back, JSONResponse({"error": f"the form is over {operator.MAX_BODY} bytes"}, 413))
    which = parse_qs(raw.decode("utf-8", "replace")).get("expected", [""])[0]
    found = await find_room(request.state.engine, room, shown=1)
    views = found.room.views if found is not None else ()
    if not which.isdigit() or int(which) >= len(views):
        return _back(back, JSONResponse({"error": "no such expected agent in this room"}, status_code=400))
    return _back(back, await operator.redispatch(request, room, views[int(which)].agent))

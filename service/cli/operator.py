"""What an operator does by hand from the command line (issue 28), through the API
(`service.api.operator`): `warden incident ack ID`, `warden incident restart ID` and
`warden redispatch ROOM AGENT`. Each is queued for the worker; a refusal (404, 409 with why, and for a
restart within the cooldown when it ends) is printed and exits 1."""

from __future__ import annotations

from urllib.parse import quote

from service.cli.views import call, cell, console, failed, handle

DONE = {"ack": "acknowledgement", "restart": "restart", "redispatch": "re-dispatch"}


def incident(url: str, action: str, incident_id: str) -> int:
    status, data = call(url, "POST", f"/api/incidents/{quote(incident_id, safe='')}/{action}")
    if status != 202:
        if data.get("cooldown_ends"):
            console().print(f"the restart cooldown ends at {cell(data['cooldown_ends'][:19])} UTC")
        return failed(status, data)
    console().print(
        f"{DONE[action]} of incident {handle(incident_id)} queued, as {cell(data['by'])}; "
        f"`warden incidents` shows it once applied"
    )
    return 0


def redispatch(url: str, room: str, agent: str) -> int:
    status, data = call(url, "POST", f"/api/rooms/{quote(room, safe='')}/redispatch", body={"agent": agent})
    if status != 202:
        return failed(status, data)
    console().print(
        f"re-dispatch of {cell(agent)} in room {cell(room)} queued, as {cell(data['by'])}; "
        f"`warden room {handle(room)}` shows it"
    )
    return 0

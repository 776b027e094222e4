"""`warden rooms`, `warden room NAME`, `warden incidents`: the API's answers as tables (colour on a
terminal, plain text when piped).

Every value from the API goes through `cell` before it is printed: masked and clipped (a 1 MB room name
is a line, not a screenful), its control characters escaped (a newline would forge a table row, ESC
would drive the terminal: `workers.core.shown`), and its `[` kept from being read as rich's markup (a
room named `[/]` would stop the command, `[blink]` would style the rest)."""

from __future__ import annotations

import os
from datetime import datetime
from typing import Any
from urllib.parse import quote

import httpx
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from workers.core.observing import would
from workers.core.shown import NAME_CHARS, TEXT_CHARS, listed, shown

STATE_STYLE = {
    "waiting": "yellow",
    "agent_present": "blue",
    "agent_active": "green",
    "agent_lost": "red",
    "closed": "dim",
    "idle": "dim",
    "no_agent_expected": "cyan",
    "fallback": "magenta",
    "open": "red",
    "resolved": "green",
}


def console() -> Console:
    return Console(highlight=False, soft_wrap=False, width=None if os.isatty(1) else 200)


def fetch(url: str, path: str, **params: Any) -> tuple[int, dict[str, Any]]:
    """GET a Warden API path; (status, JSON body), status 0 when Warden is unreachable."""
    return call(url, "GET", path, params)


def call(
    url: str, method: str, path: str, params: dict[str, Any] | None = None, body: Any = None
) -> tuple[int, dict[str, Any]]:
    """Ask a Warden API path (with `body` as JSON, if any); (status, JSON body), status 0 when Warden
    is unreachable."""
    token = os.environ.get("WARDEN_TOKEN") or os.environ.get("WARDEN_ADMIN_TOKEN", "")
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        answer = httpx.request(
            method, f"{url.rstrip('/')}{path}", params=params, json=body, headers=headers, timeout=10.0
        )
    except httpx.HTTPError as exc:
        return 0, {"error": f"Warden unreachable at {url} ({type(exc).__name__})"}
    try:
        return answer.status_code, answer.json()
    except ValueError:
        return answer.status_code, {"error": f"HTTP {answer.status_code}, not JSON"}


def cell(value: object, limit: int = NAME_CHARS) -> str:
    """A value from the API, fit to print as rich markup: masked, clipped, inert, `[` escaped."""
    return escape(shown("" if value is None else str(value), limit))


def handle(value: object) -> str:
    """An id from the API (a sid, a dead letter's id), as `cell` but never masked: it is typed back."""
    return escape(shown("" if value is None else str(value), TEXT_CHARS, mask=False))


def names(values: list[str]) -> str:
    """Identities as one cell: each `cell`-like, the first few of a long list and how many more."""
    return escape(listed(values))


def failed(status: int, data: dict[str, Any]) -> int:
    console().print(f"[red]warden: {cell(data.get('error') or f'HTTP {status}', TEXT_CHARS)}[/red]")
    return 1


def _state(state: str) -> str:
    return f"[{STATE_STYLE.get(state, 'default')}]{cell(state)}[/]"


def _wait(room: dict[str, Any]) -> str:
    agents = room.get("agent_joined_at")
    first = room.get("first_person_at")
    if agents and first:
        seconds = (datetime.fromisoformat(agents) - datetime.fromisoformat(first)).total_seconds()
        return f"{max(0.0, seconds):.1f} s"
    return "waiting" if room["people"] or room.get("people_unlisted") else "-"


def _people(room: dict[str, Any]) -> str:
    """Who is there: the people listed, and "+N more" counted beyond them (`WARDEN_ROOM_PEOPLE_LISTED`)."""
    listed = names([p["identity"] for p in room["people"]])
    more = int(room.get("people_unlisted") or 0)
    return f"{listed} +{more} more" if listed and more else listed or (f"+{more} more" if more else "none")


def rooms(url: str, *, state: str | None, limit: int) -> int:
    params: dict[str, Any] = {"limit": max(1, min(limit, 200))}
    if state:
        params["state"] = state
    status, data = fetch(url, "/api/rooms", **params)
    if status != 200:
        return failed(status, data)
    table = Table(title=f"Rooms ({cell(data['total'])}{' ' + cell(state) if state else ''}, newest first)")
    for column in ("room", "state", "people", "agent", "time to agent", "recovery", "redispatches"):
        table.add_column(column)
    for room in data["rooms"]:
        recovery = room["recovery"]
        table.add_row(
            cell(room["name"]),
            _state(room["state"]),
            str(len(room["people"]) + int(room.get("people_unlisted") or 0)),
            names([a["identity"] for a in room["agents"]]) or "-",
            _wait(room),
            cell(recovery["state"]) if recovery["state"] != "none" else "",
            cell(recovery["redispatches"]),
        )
    console().print(table)
    return 0


def room(url: str, name: str) -> int:
    status, data = fetch(url, f"/api/rooms/{quote(name, safe='')}")
    if status != 200:
        return failed(status, data)
    out = console()
    out.print(f"[bold]{cell(data['name'])}[/bold] {_state(data['state'])}  sid {handle(data['sid'])}")
    out.print(
        f"people: {_people(data)}   "
        f"agents: {names([a['identity'] for a in data['agents']]) or 'none'}   "
        f"time to agent: {_wait(data)}   redispatches: {cell(data['recovery']['redispatches'])}"
    )
    expected = data.get("expected") or []
    if expected:
        out.print(
            "expected agents: "
            + ", ".join(
                f"{cell(e['agent_name']) or '(unnamed)'} ({cell('/'.join(e['sources']))}: {cell(e['state'])}"
                f"{_agent_state(e)})"
                for e in expected
            )
        )
    elif data.get("expects") == "learned":
        out.print("expected agents: none (Warden leaves this room alone)")
    earlier = data.get("timeline_earlier") or {}
    if earlier:
        counted = ", ".join(f"{n} {cell(kind)}" for kind, n in earlier.items())
        out.print(f"{sum(earlier.values())} earlier entries not shown: {counted}")
    table = Table(title="Timeline")
    for column in ("received", "source", "what", "who", "detail"):
        table.add_column(column)
    for line in data["timeline"]:
        detail = line.get("detail") or {}
        said = {k: v for k, v in detail.items() if v not in (None, "", [], {}) and k != "carried_out"}
        text = ", ".join(f"{k}={v}" for k, v in said.items())
        what = line["type"]
        if line["source"] == "action" and detail.get("carried_out") is False:  # observe mode
            what = f"{what} ({would(what)})"
        table.add_row(
            cell((line["received_at"] or "")[11:23]),
            cell(line["source"]),
            cell(what),
            cell(line["participant"]),
            cell(text, TEXT_CHARS),
        )
    out.print(table)
    return 0


def incidents(url: str) -> int:
    status, data = fetch(url, "/api/incidents")
    if status != 200:
        return failed(status, data)
    table = Table(title=f"Incidents ({cell(data['total'])})")
    columns = (
        "id",
        "agent",
        "state",
        "opened",
        "time to recovery",
        "rooms",
        "waiting",
        "acknowledged",
        "reason",
    )
    for column in columns:
        table.add_column(column)
    for i in data["incidents"]:
        took = i["time_to_recovery_seconds"]
        table.add_row(
            handle(i["id"]),
            cell(i["agent_name"]),
            _state(i["state"]),
            cell((i["opened_at"] or "")[:19]),
            "-" if took is None else f"{took:.0f} s",
            cell(i["rooms"]),
            cell(i["rooms_waiting"]),
            _acknowledged(i),
            cell(i["reason"], TEXT_CHARS),
        )
    console().print(table)
    return 0


def _acknowledged(incident: dict[str, Any]) -> str:
    """ "alice at 12:00:03" : who acknowledged the incident, and when (issue 28); "-" for nobody yet."""
    by, at = incident.get("acknowledged_by"), incident.get("acknowledged_at")
    return f"{cell(by)} at {cell(str(at)[11:19])}" if by and at else "-"


def _agent_state(expected: dict[str, Any]) -> str:
    """ ", thinking since 12:00:03" : the agent's own `lk.agent.state`, when Warden has seen one."""
    state, since = expected.get("agent_state"), expected.get("agent_state_since")
    if not state:
        return ""
    return f", {cell(state)} since {cell(str(since)[11:19]) if since else '?'} UTC"

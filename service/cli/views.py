"""`warden rooms`, `warden room NAME`, `warden incidents`: the API's answers as tables (colour on a
terminal, plain text when piped)."""

from __future__ import annotations

import os
from datetime import datetime
from typing import Any
from urllib.parse import quote

import httpx
from rich.console import Console
from rich.table import Table

STATE_STYLE = {
    "waiting": "yellow",
    "agent_present": "blue",
    "agent_active": "green",
    "agent_lost": "red",
    "closed": "dim",
    "idle": "dim",
    "open": "red",
    "resolved": "green",
}


def console() -> Console:
    return Console(highlight=False, soft_wrap=False, width=None if os.isatty(1) else 200)


def fetch(url: str, path: str, **params: Any) -> tuple[int, dict[str, Any]]:
    """GET a Warden API path; (status, JSON body), status 0 when Warden is unreachable."""
    return call(url, "GET", path, params)


def call(
    url: str, method: str, path: str, params: dict[str, Any] | None = None
) -> tuple[int, dict[str, Any]]:
    """Ask a Warden API path; (status, JSON body), status 0 when Warden is unreachable."""
    token = os.environ.get("WARDEN_ADMIN_TOKEN", "")
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        answer = httpx.request(
            method, f"{url.rstrip('/')}{path}", params=params, headers=headers, timeout=10.0
        )
    except httpx.HTTPError as exc:
        return 0, {"error": f"Warden unreachable at {url} ({type(exc).__name__})"}
    try:
        return answer.status_code, answer.json()
    except ValueError:
        return answer.status_code, {"error": f"HTTP {answer.status_code}, not JSON"}


def failed(status: int, data: dict[str, Any]) -> int:
    console().print(f"[red]warden: {data.get('error') or f'HTTP {status}'}[/red]")
    return 1


def _state(state: str) -> str:
    return f"[{STATE_STYLE.get(state, 'default')}]{state}[/]"


def _wait(room: dict[str, Any]) -> str:
    agents = room.get("agent_joined_at")
    first = room.get("first_person_at")
    if agents and first:
        seconds = (datetime.fromisoformat(agents) - datetime.fromisoformat(first)).total_seconds()
        return f"{max(0.0, seconds):.1f} s"
    return "waiting" if room["people"] else "-"


def rooms(url: str, *, state: str | None, limit: int) -> int:
    params: dict[str, Any] = {"limit": max(1, min(limit, 200))}
    if state:
        params["state"] = state
    status, data = fetch(url, "/api/rooms", **params)
    if status != 200:
        return failed(status, data)
    table = Table(title=f"Rooms ({data['total']}{' ' + state if state else ''}, newest first)")
    for column in ("room", "state", "people", "agent", "time to agent", "recovery", "redispatches"):
        table.add_column(column)
    for room in data["rooms"]:
        recovery = room["recovery"]
        table.add_row(
            room["name"],
            _state(room["state"]),
            str(len(room["people"])),
            ", ".join(a["identity"] for a in room["agents"]) or "-",
            _wait(room),
            recovery["state"] if recovery["state"] != "none" else "",
            str(recovery["redispatches"]),
        )
    console().print(table)
    return 0


def room(url: str, name: str) -> int:
    status, data = fetch(url, f"/api/rooms/{quote(name, safe='')}")
    if status != 200:
        return failed(status, data)
    out = console()
    out.print(f"[bold]{data['name']}[/bold] {_state(data['state'])}  sid {data['sid']}")
    out.print(
        f"people: {', '.join(p['identity'] for p in data['people']) or 'none'}   "
        f"agents: {', '.join(a['identity'] for a in data['agents']) or 'none'}   "
        f"time to agent: {_wait(data)}   redispatches: {data['recovery']['redispatches']}"
    )
    expected = data.get("expected") or []
    if expected:
        out.print(
            "expected agents: "
            + ", ".join(
                f"{e['agent_name'] or '(unnamed)'} ({'/'.join(e['sources'])}: {e['state']})" for e in expected
            )
        )
    elif data.get("expects") == "learned":
        out.print("expected agents: none (Warden leaves this room alone)")
    table = Table(title="Timeline")
    for column in ("received", "source", "what", "who", "detail"):
        table.add_column(column)
    for line in data["timeline"]:
        detail = line.get("detail") or {}
        text = ", ".join(f"{k}={v}" for k, v in detail.items() if v not in (None, "", [], {}))
        table.add_row(
            (line["received_at"] or "")[11:23], line["source"], line["type"], line["participant"] or "", text
        )
    out.print(table)
    return 0


def incidents(url: str) -> int:
    status, data = fetch(url, "/api/incidents")
    if status != 200:
        return failed(status, data)
    table = Table(title=f"Incidents ({data['total']})")
    for column in ("id", "agent", "state", "opened", "time to recovery", "rooms", "waiting", "reason"):
        table.add_column(column)
    for i in data["incidents"]:
        took = i["time_to_recovery_seconds"]
        table.add_row(
            i["id"],
            i["agent_name"],
            _state(i["state"]),
            (i["opened_at"] or "")[:19],
            "-" if took is None else f"{took:.0f} s",
            str(i["rooms"]),
            str(i["rooms_waiting"]),
            i["reason"],
        )
    console().print(table)
    return 0

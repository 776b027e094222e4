"""`warden maintenance start|list|end`: maintenance windows through the API (`service.api.maintenance`).
While one covers an agent Warden restarts nothing of it and sends no alert for it; rooms are still
re-dispatched."""

from __future__ import annotations

import argparse

from rich.table import Table

from service.cli.views import call, cell, console, failed, fetch, handle
from workers.core.shown import TEXT_CHARS


def add_commands(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """`warden maintenance` and its three commands."""
    top = commands.add_parser("maintenance", help="maintenance windows: start, list, end")
    which = top.add_subparsers(dest="maintenance", required=True, metavar="ACTION")
    start = which.add_parser("start", help="start a window: no restart and no alert for the agent")
    start.add_argument("--agent", required=True, help="the agent's name, or '*' for every agent")
    start.add_argument("--minutes", type=int, required=True, help="how long (1 to 10080)")
    start.add_argument("--reason", default="", help="what is being done (shown with the window)")
    which.add_parser("list", help="the active windows and the recent ones, newest first")
    end = which.add_parser("end", help="end a window now")
    end.add_argument("id", help="the window's id, as `warden maintenance list` shows it")


def run(url: str, args: argparse.Namespace) -> int:
    match args.maintenance:
        case "start":
            return start(url, args.agent, args.minutes, args.reason)
        case "end":
            return end(url, args.id)
    return listed(url)


def start(url: str, agent: str, minutes: int, reason: str) -> int:
    body = {"agent": agent, "minutes": minutes, "reason": reason}
    status, data = call(url, "POST", "/api/maintenance", body=body)
    if status != 201:
        return failed(status, data)
    console().print(
        f"maintenance window {handle(data['id'])} started: {_agent(data['agent'])} until "
        f"{cell(data['until'][:16].replace('T', ' '))} UTC, by {cell(data['by'])}"
    )
    return 0


def listed(url: str) -> int:
    status, data = fetch(url, "/api/maintenance")
    if status != 200:
        return failed(status, data)
    table = Table(title="Maintenance windows, newest first (`warden maintenance end ID` ends one)")
    for column in ("id", "agent", "state", "from", "until", "by", "reason"):
        table.add_column(column)
    for window in data["windows"]:
        state = "active" if window["active"] else "ended early" if window["ended_at"] else "over"
        table.add_row(
            handle(window["id"]),
            _agent(window["agent"]),
            f"[yellow]{state}[/yellow]" if window["active"] else state,
            cell(window["starts_at"][:16].replace("T", " ")),
            cell((window["ended_at"] or window["until"])[:16].replace("T", " ")),
            cell(window["by"]),
            cell(window["reason"], TEXT_CHARS),
        )
    console().print(table)
    return 0


def end(url: str, window_id: str) -> int:
    if not window_id.isdigit():
        failed(2, {"error": f"a window's id is a number, not {window_id!r}"})
        return 2
    status, data = call(url, "DELETE", f"/api/maintenance/{window_id}")
    if status != 200:
        return failed(status, data)
    console().print(f"maintenance window {handle(data['id'])} ended: {_agent(data['agent'])}")
    return 0


def _agent(agent: str) -> str:
    return "every agent" if agent == "*" else f"agent {cell(agent)}"

"""`warden canaries`: each agent's canary terms, last success, failures in a row and latest runs,
through the API (`service.api.canaries`)."""

from __future__ import annotations

from typing import Any

from rich.table import Table

from service.cli.views import cell, console, failed, fetch
from workers.core.shown import TEXT_CHARS

OUTCOME_STYLE = {
    "pass": "green",
    "fail": "red",
    "capacity": "yellow",  # workers full: no outage
    "running": "blue",
    "interrupted": "dim",
}
HOW_TO = (
    "No canaries configured: name the agents in WARDEN_CANARY_AGENTS (comma-separated), or set "
    "`canary = true` on their rule in the WARDEN_RULES file."
)


def _duration(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.1f} s" if value < 60 else f"{value / 60:g} min"


def _terms(agent: dict[str, Any]) -> str:
    if not agent["configured"]:
        return "not configured any more (runs on record)"
    return f"every {_duration(agent['every_seconds'])}, SLA {_duration(agent['sla_seconds'])}"


def _outcome(outcome: str) -> str:
    return f"[{OUTCOME_STYLE.get(outcome, 'default')}]{cell(outcome)}[/]"


def canaries(url: str, *, limit: int) -> int:
    status, data = fetch(url, "/api/canaries", limit=max(1, min(limit, 200)))
    if status != 200:
        return failed(status, data)
    out = console()
    if not data["agents"]:
        out.print(HOW_TO)
        return 0
    for agent in data["agents"]:
        failing = agent["failing_in_a_row"]
        streak = f"[red]{failing}[/red]" if failing else "0"
        out.print(
            f"[bold]{cell(agent['agent'])}[/bold]  {_terms(agent)}   "
            f"last success: {cell((agent['last_success_at'] or 'never')[:19])}   "
            f"failures in a row: {streak} (an incident at {cell(agent['failures_to_open'])})"
        )
        table = Table()
        for column in ("started", "outcome", "time to agent", "room", "detail"):
            table.add_column(column)
        for run in agent["runs"]:
            table.add_row(
                cell((run["started_at"] or "")[:19]),
                _outcome(run["outcome"]),
                _duration(run["seconds"]),
                cell(run["room"]),
                cell(run["detail"], TEXT_CHARS),
            )
        out.print(table)
    return 0

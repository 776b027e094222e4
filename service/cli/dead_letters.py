"""`warden dead-letters` (jobs that failed for good, newest first) and `warden retry ID` (queue one
again once its cause is fixed), through the API (`service.api.dead_letters`)."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from rich.table import Table

from service.cli.views import call, cell, console, failed, fetch, handle
from workers.core.shown import TEXT_CHARS


def dead_letters(url: str) -> int:
    status, data = fetch(url, "/api/dead-letters")
    if status != 200:
        return failed(status, data)
    letters = data["dead_letters"]
    waiting = sum(1 for letter in letters if letter["retried_at"] is None)
    table = Table(title=f"Dead letters ({waiting} not re-run; `warden retry ID` re-runs one)")
    for column in ("id", "function", "room", "tries", "failed", "re-run", "error"):
        table.add_column(column)
    for letter in letters:
        room = letter["room"]
        table.add_row(
            handle(letter["id"]),
            cell(letter["function"]),
            cell(room["name"] or room["sid"] or "-"),
            cell(letter["attempts"]),
            cell((letter["failed_at"] or "")[:19]),
            cell(_re_run(letter)),
            cell(letter["error"], TEXT_CHARS),
        )
    console().print(table)
    return 0


def _re_run(letter: dict[str, Any]) -> str:
    """When the letter was re-run and by whom (the operator's token's name), or "not yet"."""
    if letter["retried_at"] is None:
        return "not yet"
    by = letter.get("retried_by")
    return f"{letter['retried_at'][:19]} by {by}" if by else letter["retried_at"][:19]


def retry(url: str, letter_id: str) -> int:
    status, data = call(url, "POST", f"/api/dead-letters/{quote(letter_id, safe='')}/retry")
    if status != 200:
        return failed(status, data)
    console().print(
        f"re-queued {handle(data['id'])} ({cell(data['function'])}) as job {handle(data['job_id'])} "
        f"by {cell(data.get('retried_by') or 'an operator')}"
    )
    return 0

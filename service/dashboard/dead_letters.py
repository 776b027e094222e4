"""The dashboard's `/dead-letters`: jobs that failed for good, newest first, with what to do about them
(the dashboard only shows; `warden retry ID` re-runs one)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from service.api.dead_letters import letter_summary
from service.dashboard.pages import page, render
from workers.core.shown import TEXT_CHARS, fit
from workers.store.dead_letters import newest

SHOWN = 200


@page
async def dead_letters_page(request: Request) -> Response:
    letters = await newest(request.state.engine, limit=SHOWN)
    rows = [
        {
            **(summary := letter_summary(letter)),
            "room": {**summary["room"], "name": summary["room"]["name"] and fit(summary["room"]["name"])},
            "error": fit(letter.error, TEXT_CHARS),
            "failed": letter.failed_at,
        }
        for letter in letters
    ]
    waiting = sum(1 for letter in letters if letter.retried_at is None)
    return render(request, "dead_letters", {"letters": rows, "waiting": waiting})

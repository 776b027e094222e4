"""The dashboard's `/canaries`: per agent its canary terms, when its canary last passed, its failures in
a row and its latest runs; when none is configured, how to configure them."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from service.api.canaries import AgentCanaries, read_canaries
from service.dashboard.pages import page, render
from workers.core.shown import TEXT_CHARS, fit

SHOWN = 10  # runs per agent


def shown_agent(found: AgentCanaries, failures: int) -> dict[str, Any]:
    """An agent's canaries as the page shows them: names clipped, `failures` the global setting."""
    policy = found.policy
    return {
        "agent": fit(found.agent),
        "configured": policy is not None,
        "every": None if policy is None else policy.every,
        "sla": None if policy is None else policy.sla,
        "failures_to_open": failures if policy is None else policy.failures,
        "failing": found.failing,
        "last_success": found.last_success,
        "runs": [
            {
                "n": run.n,
                "started_at": run.started_at,
                "outcome": str(run.outcome),
                "seconds": run.seconds,
                "room": fit(run.room),
                "detail": fit(run.detail, TEXT_CHARS),
            }
            for run in found.runs
        ],
    }


@page
async def canaries_page(request: Request) -> Response:
    settings = request.state.settings
    found = await read_canaries(request.state.engine, settings.canaries(), SHOWN)
    failures = settings.warden_canary_failures
    return render(request, "canaries", {"agents": [shown_agent(agent, failures) for agent in found]})

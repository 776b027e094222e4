"""The dashboard's service levels (issue 29): `/slo`, each agent's `on_time` and `served` over the window,
its objective, budget left and burn rate; `/slo/{agent}`, both ratios over time, the budget left, and
the rooms that spent it (late, or never served), each linked to its timeline. The figures are the API's
(`service.api.slo`)."""

from __future__ import annotations

import time
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from service.api.slo import AgentSlo, read_slo
from service.dashboard.pages import TEMPLATES, page, render
from service.dashboard.slo_chart import Point, ratio_chart_svg
from workers.core import sli
from workers.core.shown import fit
from workers.store.sli_outcomes import series, spent

STRETCHES = 30  # points on the chart: the window in this many stretches
SPENT_SHOWN = 50


def shown_agent(found: AgentSlo) -> dict[str, Any]:
    return {
        "agent": found.agent,
        "name": fit(found.agent),
        "objective": found.objective,
        "total": found.total,
        "on_time": found.on_time,
        "served": found.served,
        "on_time_ratio": sli.ratio(found.on_time, found.total),
        "served_ratio": sli.ratio(found.served, found.total),
        "budget_remaining": found.budget_remaining,
        "burn_rate_1h": found.burn_rate_1h,
    }


@page
async def slo_page(request: Request) -> Response:
    settings = request.state.settings
    found = await read_slo(request.state.engine, settings, time.time())
    window = settings.slo_window
    return render(request, "slo", {"agents": [shown_agent(a) for a in found], "window": window})


@page
async def slo_agent_page(request: Request) -> Response:
    settings, engine = request.state.settings, request.state.engine
    agent = request.path_params["agent"]
    now = time.time()
    found = next((a for a in await read_slo(engine, settings, now) if a.agent == agent), None)
    if found is None:
        what = f"agent {fit(agent)} (no rooms counted in the window, and no rule names it)"
        return TEMPLATES.TemplateResponse(request, "missing.html", {"what": what}, status_code=404)
    start = now - settings.slo_window_seconds
    step = settings.slo_window_seconds / STRETCHES
    points = [Point(at + step / 2, *counts) for at, *counts in await series(engine, agent, start, step)]
    rooms = [
        # linked by its sid: a room's name may hold a caller's phone number, masked where it is shown
        {**row, "room_name": fit(row["room_name"]), "link": row["room_sid"]}
        for row in await spent(engine, agent, start, SPENT_SHOWN)
    ]
    context = {
        "a": shown_agent(found),
        "window": settings.slo_window,
        "chart": ratio_chart_svg(points, start, now, found.objective),
        "rooms": rooms,
    }
    return render(request, "slo_agent", context)

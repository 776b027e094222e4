"""The service levels API (issue 29): `GET /api/slo`, each agent's `on_time` and `served` over the SLO
window (`WARDEN_SLO_WINDOW`), its objective, the error budget left and how fast it burns over the last
hour. Counted from `sli_outcomes` (`workers.store.sli_outcomes`, read by the index on `decided_at`), as
the dashboard's `/slo` and `warden slo` show it. The agents: those with outcomes in the window, and
those the rules (or `WARDEN_AGENT_NAME`) name, with nothing counted yet."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.requests import Request
from starlette.responses import JSONResponse

from service.api.auth import admin_only
from workers.core import sli
from workers.settings import Settings
from workers.store.sli_outcomes import totals

HOUR = 3600.0


@dataclass(frozen=True)
class AgentSlo:
    """One agent's service levels over the window."""

    agent: str
    objective: float
    total: int
    on_time: int
    served: int
    hour_total: int
    hour_served: int

    @property
    def budget_remaining(self) -> float:
        return sli.budget_remaining(self.served, self.total, self.objective)

    @property
    def burn_rate_1h(self) -> float:
        return sli.burn_rate(self.hour_served, self.hour_total, self.objective)


async def read_slo(engine: AsyncEngine, settings: Settings, now: float) -> list[AgentSlo]:
    """Every agent's service levels over the window ending `now`: the configured ones first, in the rules'
    order, then the others counted, by name."""
    rules = settings.rules().rules
    window = await totals(engine, now - settings.slo_window_seconds)
    hour = await totals(engine, now - HOUR)
    configured = dict.fromkeys(a for r in rules for a in r.agents or ())
    agents = [*configured, *sorted(a for a in window if a not in configured)]
    found = []
    for agent in agents:
        total, on_time, served = window.get(agent, (0, 0, 0))
        hour_total, _, hour_served = hour.get(agent, (0, 0, 0))
        objective = settings.objective(agent, rules)
        found.append(AgentSlo(agent, objective, total, on_time, served, hour_total, hour_served))
    return found


def _level(good: int, total: int) -> dict[str, Any]:
    share = sli.ratio(good, total)
    return {"good": good, "total": total, "ratio": None if share is None else round(share, 6)}


def agent_summary(found: AgentSlo, window: str) -> dict[str, Any]:
    """An agent's service levels for the API."""
    return {
        "agent": found.agent,
        "objective": found.objective,
        "window": window,
        "on_time": _level(found.on_time, found.total),
        "served": _level(found.served, found.total),
        "budget_remaining": round(found.budget_remaining, 6),
        "burn_rate_1h": round(found.burn_rate_1h, 6),
    }


@admin_only
async def get_slo(request: Request) -> JSONResponse:
    settings: Settings = request.state.settings
    found = await read_slo(request.state.engine, settings, time.time())
    return JSONResponse({"agents": [agent_summary(agent, settings.slo_window) for agent in found]})

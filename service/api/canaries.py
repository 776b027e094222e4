"""The canaries API: `GET /api/canaries`, each agent's canary terms, its failures in a row, when its
canary last passed and its latest runs (newest first, `?limit=` of them). The agents are the configured
ones (`WARDEN_CANARY_AGENTS`, rules with `canary = true`), then any other with runs on record
(`configured` false: its canaries were dropped since). Read from the store, as the dashboard's
`/canaries` and `warden canaries` show it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.requests import Request
from starlette.responses import JSONResponse

from service.api.auth import admin_only
from service.api.rooms import int_param, iso
from workers.core.canary import CanaryPolicy, Run, streak
from workers.core.personal import mask_phone
from workers.store.canary_reads import last_successes
from workers.store.canary_runs import recent_by_agent

RUNS_SHOWN = 20
MAX_RUNS = 200
STREAK_WINDOW = 200  # failures in a row are counted over at most this many latest runs


@dataclass(frozen=True)
class AgentCanaries:
    """One agent's canaries as the operator sees them."""

    agent: str
    policy: CanaryPolicy | None  # None: not configured (any more), its runs on record
    runs: list[Run]  # the latest, newest first
    failing: int  # failures in a row, the newest first (interrupted and running runs skipped)
    last_success: float | None  # when its newest passing run ended


async def read_canaries(
    engine: AsyncEngine, policies: Sequence[CanaryPolicy], limit: int
) -> list[AgentCanaries]:
    """The configured agents in their order, then the others with runs, by name; `limit` runs each."""
    configured = {policy.agent: policy for policy in policies}
    runs = await recent_by_agent(engine, list(configured), max(limit, STREAK_WINDOW))
    agents = [*configured, *(agent for agent in runs if agent not in configured)]
    last = await last_successes(engine, agents)
    return [
        AgentCanaries(
            agent,
            configured.get(agent),
            runs.get(agent, [])[:limit],
            streak(run.outcome for run in runs.get(agent, [])),
            last.get(agent),
        )
        for agent in agents
    ]


def run_summary(run: Run) -> dict[str, Any]:
    return {
        "n": run.n,
        "room": run.room,
        "started_at": iso(run.started_at),
        "finished_at": iso(run.finished_at),
        "outcome": str(run.outcome),
        "seconds": None if run.seconds is None else round(run.seconds, 3),
        "detail": mask_phone(run.detail),
    }


def agent_summary(found: AgentCanaries, failures: int) -> dict[str, Any]:
    """An agent's canaries for the API; `failures`: `WARDEN_CANARY_FAILURES`, for agents not configured."""
    policy = found.policy
    return {
        "agent": found.agent,
        "configured": policy is not None,
        "every_seconds": None if policy is None else policy.every,
        "sla_seconds": None if policy is None else policy.sla,
        "failures_to_open": failures if policy is None else policy.failures,
        "failing_in_a_row": found.failing,
        "last_success_at": iso(found.last_success),
        "runs": [run_summary(run) for run in found.runs],
    }


@admin_only
async def get_canaries(request: Request) -> JSONResponse:
    try:
        limit = int_param(request, "limit", RUNS_SHOWN, 1, MAX_RUNS)
    except ValueError as exc:
        return JSONResponse({"error": str(exc)}, status_code=400)
    settings = request.state.settings
    found = await read_canaries(request.state.engine, settings.canaries(), limit)
    failures = settings.warden_canary_failures
    return JSONResponse({"agents": [agent_summary(agent, failures) for agent in found]})

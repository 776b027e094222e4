"""What operators do by hand (issue 28): `POST /api/incidents/{id}/ack`, `POST /api/incidents/{id}/restart`
and `POST /api/rooms/{name}/redispatch`. Operators only (`operator_only`); each records the name of the
caller's token as `by`, never the token.

The web process changes nothing itself and calls nobody: it refuses what the state it reads says is wrong
(404, 409, 400 for a bad body), then queues the request for the worker (202), which applies it through
the incident's machine or the room's (`workers.jobs.delivery.operator`): the acknowledgement's alerts and
the restart's deploy hook through the outbox, the re-dispatch as a check of the room's, in its log or
timeline with `by`. A request asked again while the first is still queued is refused (409) too. When no
running worker has said lately that it applies such requests (`workers.queue.advertised`: no worker up,
or the workers still run a release from before them, during an upgrade that started with the web), the
request is refused with 503 and queued nowhere, rather than answered 202 and never applied.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from redis.exceptions import RedisError
from starlette.requests import Request
from starlette.responses import JSONResponse

from service.api.auth import caller_name, operator_only
from service.api.rooms import iso
from service.request_body import BodyTooLarge, read_body
from workers.core import bounds
from workers.core.incident_values import IncidentState
from workers.core.personal import mask_phone
from workers.core.recovery import CONNECT_GRACE
from workers.core.room import WAITING_PHASES, Reason, Recovery
from workers.core.shown import shown
from workers.queue.advertised import FOR_SECONDS, runs
from workers.queue.jobs import ACK, OPERATOR_ACTION, REDISPATCH, RESTART, queue_operator_action
from workers.store import maintenance
from workers.store.incident_steps import deployment_restart
from workers.store.incidents import Incident, get_incident
from workers.store.queries import find_room

log = logging.getLogger("warden.web")
MAX_BODY = 4096
UNDER_WAY = (IncidentState.RESTARTING, IncidentState.ROLLING_BACK)
OBSERVING = (
    "Warden is in observe mode (WARDEN_MODE=observe): it changes nothing, by hand neither; "
    "set WARDEN_MODE=act and restart Warden to act"
)
NO_WORKER = (
    f"no worker that applies operators' requests has been running in the last {FOR_SECONDS} s (it is down, "
    "or runs an older release: upgrade the worker first); nothing was queued, retry once it runs"
)


def _refused(error: str, status: int = 409, **more: Any) -> JSONResponse:
    return JSONResponse({"error": error, **more}, status_code=status)


async def _queued(
    request: Request, action: str, target: str, for_agent: str = "", **shown_as: str
) -> JSONResponse:
    """Queue the request for the worker: 202, or 409 when the same one is still queued, 503 without Redis
    or without a worker that applies it."""
    by = caller_name(request)
    try:
        if not await runs(request.state.queue, request.state.settings.warden_queue_name, OPERATOR_ACTION):
            return _refused(NO_WORKER, 503)
        queued = await queue_operator_action(
            request.state.enqueuer, action, target, by, time.time(), for_agent
        )
    except (RedisError, OSError, TimeoutError):
        return _refused("queue unavailable, retry later", 503)
    if not queued:
        return _refused("the same request is queued already; it is being applied")
    log.info("operator %s asked for %s of %s", by, action, shown(target))
    return JSONResponse({"status": "queued", "action": action, "by": by, **shown_as}, status_code=202)


async def _incident(request: Request, incident_id: str) -> Incident | JSONResponse:
    incident = await get_incident(request.state.engine, incident_id)
    if incident is None:
        return _refused("no such incident", 404)
    if incident.resolved_at is not None:
        return _refused(f"incident {incident.id} is resolved (at {iso(incident.resolved_at)})")
    return incident


@operator_only
async def ack_incident(request: Request) -> JSONResponse:
    return await acknowledge(request, request.path_params["id"])


@operator_only
async def restart_incident(request: Request) -> JSONResponse:
    return await restart(request, request.path_params["id"])


@operator_only
async def redispatch_agent(request: Request) -> JSONResponse:
    agent = await _agent_asked(request)
    if isinstance(agent, JSONResponse):
        return agent
    return await redispatch(request, request.path_params["name"], agent)


async def acknowledge(request: Request, incident_id: str) -> JSONResponse:
    """Acknowledge incident `incident_id` (the caller is an operator): 202 queued, or 404 / 409."""
    incident = await _incident(request, incident_id)
    if isinstance(incident, JSONResponse):
        return incident
    if incident.acknowledged_at is not None:
        return _refused(
            f"incident {incident.id} was acknowledged by {incident.acknowledged_by} at "
            f"{iso(incident.acknowledged_at)}"
        )
    return await _queued(request, ACK, incident.id, incident_id=incident.id)


async def restart(request: Request, incident_id: str) -> JSONResponse:
    """Restart incident `incident_id`'s deployment now: 202 queued, or 404 / 409 (with `cooldown_ends`)."""
    incident = await _incident(request, incident_id)
    if isinstance(incident, JSONResponse):
        return incident
    if request.state.settings.observing:
        return _refused(OBSERVING)
    if not incident.deployment:
        return _refused("nothing to restart: no Cloud agent and no deploy hook for its agent")
    if incident.state in UNDER_WAY:
        return _refused(
            f"its {'rollback' if incident.state is IncidentState.ROLLING_BACK else 'restart'} is under way"
        )
    windows = [
        w
        for w in await maintenance.active(request.state.engine, time.time())
        if w.agent in (incident.agent_name, maintenance.EVERY_AGENT)
    ]
    if windows:
        return _refused(f"{windows[0].said()}: no restart while it lasts (end it first)")
    last = await deployment_restart(request.state.engine, incident.deployment)
    if last.under_way:
        return _refused("its deployment's restart is under way")
    cooldown = request.state.settings.warden_restart_cooldown_seconds
    now = time.time()
    if last.claimed_at is not None and last.claimed_at + cooldown > now:
        ends = last.claimed_at + cooldown
        return _refused(
            f"its deployment was restarted at {iso(last.claimed_at)}; WARDEN_RESTART_COOLDOWN_SECONDS "
            f"({cooldown:g} s) runs until {iso(ends)}",
            cooldown_ends=iso(ends),
        )
    return await _queued(request, RESTART, incident.id, incident_id=incident.id)


async def _agent_asked(request: Request) -> str | JSONResponse:
    """The agent named in the body (`{"agent": "<name>"}`), or the 400 for a body that does not."""
    try:
        raw = await read_body(request, MAX_BODY)
    except BodyTooLarge:
        return _refused(f"the body is over {MAX_BODY} bytes", 400)
    try:
        body = json.loads(raw or b"null")
    except ValueError:
        return _refused('send JSON: {"agent": "<agent name>"}', 400)
    agent = body.get("agent") if isinstance(body, dict) else None
    if not isinstance(agent, str) or not agent:
        return _refused('send JSON: {"agent": "<agent name>"}', 400)
    problem = bounds.problem(agent, bounds.AGENT_NAME)
    return _refused(f"agent is {problem}", 400) if problem is not None else agent


async def redispatch(request: Request, room_name: str, agent: str) -> JSONResponse:
    """Re-dispatch `agent` in room `room_name` (its name or sid) now: 202 queued, or 404 / 409."""
    found = await find_room(request.state.engine, room_name, shown=1)
    if found is None:
        return _refused("no such room", 404)
    room = found.room
    view = room.view(agent)
    if view is None:
        return _refused(f"room does not expect agent {shown(agent)} (no rule or dispatch names it)", 404)
    if request.state.settings.observing:
        return _refused(OBSERVING)
    if room.finished_at is not None:
        return _refused("the room has finished")
    if any(a.name in (agent, "") for a in room.agents):
        return _refused(f"an agent named {shown(agent)} is in the room")
    if view.phase not in WAITING_PHASES:
        return _refused(f"nobody in the room waits for {shown(agent)}")
    deadline = view.deadline
    if view.recovery in (Recovery.CHECKING, Recovery.EVICTING, Recovery.REDISPATCHING) or (
        deadline is not None and deadline.reason is Reason.BY_HAND
    ):
        return _refused(f"a re-dispatch of {shown(agent)} is under way")
    now = time.time()
    if view.dispatched_at is not None and now - view.dispatched_at < CONNECT_GRACE:
        return _refused(
            f"a dispatch of {shown(agent)} was made {now - view.dispatched_at:.1f} s ago: LiveKit may "
            f"still bring its agent (grace {CONNECT_GRACE:g} s)"
        )
    return await _queued(request, REDISPATCH, room.name, agent, room=mask_phone(room.name), agent=agent)

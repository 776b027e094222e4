"""The dead letters API: `GET /api/dead-letters` (newest first) and `POST /api/dead-letters/{id}/retry`,
which queues the failed job again (same function and arguments, a re-run id) and marks it re-run, by
the operator who asked (`retried_by`: the token's name, never the token)."""

from __future__ import annotations

import logging
import time
from typing import Any

from redis.exceptions import RedisError
from starlette.requests import Request
from starlette.responses import JSONResponse

from service.api.auth import admin_only, caller_name, operator_only
from service.api.rooms import int_param, iso
from workers.core.personal import mask_phone, mask_within
from workers.queue.jobs import queue_retry
from workers.store.dead_letters import DeadLetter, claim_retry, find, newest, release_retry

log = logging.getLogger("warden.web")


def letter_summary(letter: DeadLetter) -> dict[str, Any]:
    """A dead letter as the API, the CLI and the dashboard show it: phone numbers masked throughout (the
    arguments are kept whole in the database, to be re-run as they were)."""
    return {
        "id": letter.id,
        "function": letter.function,
        "room": {"sid": letter.room_sid, "name": mask_phone(letter.room_name or "") or None},
        "args": mask_within(letter.args),
        "error": mask_phone(letter.error),
        "attempts": letter.attempts,
        "failed_at": iso(letter.failed_at),
        "retried_at": iso(letter.retried_at),
        "retried_by": letter.retried_by,
    }


@admin_only
async def get_dead_letters(request: Request) -> JSONResponse:
    try:
        limit = int_param(request, "limit", 100, 1, 500)
    except ValueError as exc:
        return JSONResponse({"error": str(exc)}, status_code=400)
    found = await newest(request.state.engine, limit=limit)
    return JSONResponse({"dead_letters": [letter_summary(letter) for letter in found]})


@operator_only
async def retry_dead_letter(request: Request) -> JSONResponse:
    engine, letter_id = request.state.engine, request.path_params["id"]
    by = caller_name(request)
    letter = await claim_retry(engine, letter_id, time.time(), by)
    if letter is None:
        known = await find(engine, letter_id)
        if known is None:
            return JSONResponse({"error": "no such dead letter"}, status_code=404)
        return JSONResponse(
            {
                "error": f"already re-run at {iso(known.retried_at)} by {known.retried_by or 'an operator'}; "
                "it is listed again if it fails again"
            },
            status_code=409,
        )
    try:
        job_id = await queue_retry(request.state.enqueuer, letter.id, letter.function, letter.args)
    except (RedisError, OSError) as exc:
        await release_retry(engine, letter.id)
        log.warning("dead letter %s not re-queued: Redis unavailable (%s)", letter.id, type(exc).__name__)
        return JSONResponse({"error": "Redis unavailable, retry later"}, status_code=503)
    log.info("dead letter %s re-queued as %s by %s", letter.id, job_id, by)
    return JSONResponse({**letter_summary(letter), "job_id": job_id})

"""`POST /api/rooms/{name}/heartbeat`: an agent says it is working (activity for the stalled check).

Authenticated by a LiveKit access token for that room, signed with one of Warden's LiveKit keys (an
agent already holds the key pair; its identity is the token's subject), or by `WARDEN_ADMIN_TOKEN`
with the identity in the JSON body. Answers 202 once queued, 400 for a room name or identity Warden
cannot keep as it is (`workers.core.bounds`, as for webhooks), 503 when the queue is unreachable.
"""

from __future__ import annotations

import hmac
import json
import time

from redis.exceptions import RedisError
from starlette.requests import Request
from starlette.responses import JSONResponse

from workers.core import bounds
from workers.core.errors import InvalidWebhook
from workers.queue.jobs import queue_heartbeat

MAX_BODY = 4096


async def _identity(request: Request, room: str) -> str | JSONResponse:
    header = request.headers.get("authorization", "")
    admin = request.state.settings.admin_token
    if admin and hmac.compare_digest(header.removeprefix("Bearer ").encode(), admin.encode()):
        raw = await request.body()
        try:
            identity = json.loads(raw[:MAX_BODY] or b"{}").get("identity", "") if raw else ""
        except (ValueError, AttributeError):
            identity = ""
        if not isinstance(identity, str) or not identity:
            return JSONResponse({"error": 'with the admin token, send {"identity": "<agent identity>"}'}, 400)
        return identity
    try:
        claims = request.state.verifier.claims(header)
    except InvalidWebhook as exc:
        return JSONResponse({"error": str(exc)}, status_code=401)
    if not claims.video or claims.video.room != room or not claims.identity:
        return JSONResponse({"error": "token must name this room and an identity"}, status_code=403)
    return str(claims.identity)


async def post_heartbeat(request: Request) -> JSONResponse:
    room = request.path_params["name"]
    identity = await _identity(request, room)
    if isinstance(identity, JSONResponse):
        return identity
    for field, value, limit in (
        ("room name", room, bounds.ROOM_NAME),
        ("identity", identity, bounds.IDENTITY),
    ):
        problem = bounds.problem(value, limit)
        if problem is not None:
            return JSONResponse({"error": f"{field} is {problem}"}, status_code=400)
    try:
        await queue_heartbeat(request.state.enqueuer, room, identity, time.time())
    except (RedisError, OSError, TimeoutError):
        return JSONResponse({"error": "queue unavailable, retry later"}, status_code=503)
    return JSONResponse({"status": "queued", "room": room, "identity": identity}, status_code=202)

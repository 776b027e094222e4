"""At most `WARDEN_WEB_CONCURRENCY` requests handled at once by one web process; over it, 503 at once.

Requests, not connections, are counted (uvicorn's own `limit_concurrency` counts both): an idle or
slow-to-send connection costs a file descriptor and a little memory, which the read deadlines and the
connection cap of `service.connections` bound, but no work. Counting it would let a few hundred idle
connections turn every webhook away; counted this way, webhooks are served beside them for as long as
the process has descriptors to accept them with. A request over the limit is answered before its body
is read, so a flood of them costs little; LiveKit retries a 503.
"""

from __future__ import annotations

import logging
import time

from starlette.types import ASGIApp, Receive, Scope, Send

log = logging.getLogger("warden.web")

REFUSALS_LOGGED_EVERY_SECONDS = 10.0
BUSY = b'{"error":"too many requests in progress, retry later"}'
_BUSY_HEADERS = [(b"content-type", b"application/json"), (b"content-length", str(len(BUSY)).encode())]


class RequestCount:
    """The requests one web process is handling, and how many it may handle at once: shared by
    `ConcurrencyLimit` and the route served ahead of it (`service.direct_route`), so both count
    against one limit."""

    __slots__ = ("_refusal_logged_at", "_refused", "in_progress", "limit")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.in_progress = 0
        self._refused = 0
        self._refusal_logged_at = float("-inf")

    async def refuse(self, send: Send) -> None:
        """Answer 503 (and say so at most every 10 s, with the count: a flood of requests must not
        become a flood of log lines)."""
        self._refused += 1
        now = time.monotonic()
        if now - self._refusal_logged_at >= REFUSALS_LOGGED_EVERY_SECONDS:
            log.warning(
                "%d requests in progress (WARDEN_WEB_CONCURRENCY): %d more answered 503",
                self.in_progress,
                self._refused,
            )
            self._refused, self._refusal_logged_at = 0, now
        await send({"type": "http.response.start", "status": 503, "headers": _BUSY_HEADERS})
        await send({"type": "http.response.body", "body": BUSY})


class ConcurrencyLimit:
    """ASGI middleware: 503 for a request arriving while `count.limit` others are being handled."""

    def __init__(self, app: ASGIApp, count: RequestCount) -> None:
        self.app = app
        self.count = count

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        count = self.count
        if count.in_progress >= count.limit:
            await count.refuse(send)
            return
        count.in_progress += 1
        try:
            await self.app(scope, receive, send)
        finally:
            count.in_progress -= 1

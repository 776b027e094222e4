"""One route served ahead of Starlette's own routing and middleware: `DirectRoute`, the first of the
app's middleware, hands a request of its method and exact path straight to its ASGI app, past the
other middleware, Starlette's exception middleware and router (about a fifth of a webhook's cost),
and does for it in one layer what those middlewares do for every other request: it counts it in the
concurrency limit (`service.concurrency`, the same count) and bounds the time its body takes to arrive
(`service.body_reading`). Starlette's outermost middleware still answers 500 for an unexpected error.
The route stays in the router too, which answers its other methods (405).

A body that had arrived whole when the request was parsed (the usual webhook: one packet) is read
without the deadline's timer; any other goes through `BodyDeadline`, as for every route.
"""

from __future__ import annotations

from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Receive, Scope, Send

from service.body_reading import BODY_RECEIVED, BodyDeadline, client_gone
from service.concurrency import RequestCount


class DirectRoute:
    """ASGI middleware: `method` `path` to `endpoint` (within `count` and the body deadline of
    `timeout` seconds), everything else to the app."""

    def __init__(
        self, app: ASGIApp, path: str, method: str, endpoint: ASGIApp, count: RequestCount, timeout: float
    ) -> None:
        self.app, self.path, self.method, self.endpoint = app, path, method, endpoint
        self.count = count
        self.bounded = BodyDeadline(endpoint, timeout)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != self.path or scope["method"] != self.method:
            await self.app(scope, receive, send)
            return
        count = self.count
        if count.in_progress >= count.limit:
            await count.refuse(send)
            return
        count.in_progress += 1
        try:
            if scope.get(BODY_RECEIVED):
                try:
                    await self.endpoint(scope, receive, send)
                except ClientDisconnect:  # gone before its body was read: `receive` says so
                    client_gone(scope, None)
            else:
                await self.bounded(scope, receive, send)
        finally:
            count.in_progress -= 1

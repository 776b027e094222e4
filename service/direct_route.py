"""One route served ahead of Starlette's own routing: `DirectRoute`, the last of the app's middleware,
hands a request of its method and exact path straight to its ASGI app, past Starlette's exception
middleware and router (about a tenth of a webhook's cost). Everything outside it still holds: the
concurrency limit, the body deadline, and the 500 answer of an unexpected error. The route stays in
the router too, which answers its other methods (405) and any request the middleware does not see.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send


class DirectRoute:
    """ASGI middleware: `method` `path` to `endpoint`, everything else to the app."""

    def __init__(self, app: ASGIApp, path: str, method: str, endpoint: ASGIApp) -> None:
        self.app, self.path, self.method, self.endpoint = app, path, method, endpoint

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == self.path and scope["method"] == self.method:
            await self.endpoint(scope, receive, send)
        else:
            await self.app(scope, receive, send)

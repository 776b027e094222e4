"""A stand-in receiver for Warden's outgoing HTTP (Slack, PagerDuty, Opsgenie, any webhook router): a
real Starlette app on a loopback port that records every request and answers each path with the
statuses a test plans for it (then 202)."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from devtools.simulator.serving import serve


@dataclass(frozen=True)
class Received:
    """One request as it arrived: method, path with its query, headers (lower-case names), body."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receiver:
    url: str = ""
    received: list[Received] = field(default_factory=list)
    _planned: dict[str, list[int]] = field(default_factory=dict)

    def answer(self, path: str, *statuses: int) -> None:
        """Answer the next requests to `path` (without its query) with `statuses`, one each, in order."""
        self._planned.setdefault(path, []).extend(statuses)

    def at(self, prefix: str) -> list[Received]:
        """The requests whose path starts with `prefix`, in the order they arrived."""
        return [r for r in self.received if r.path.startswith(prefix)]

    async def _receive(self, request: Request) -> JSONResponse:
        path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        headers = {k.lower(): v for k, v in request.headers.items()}
        self.received.append(Received(request.method, path, headers, await request.body()))
        planned = self._planned.get(request.url.path)
        status = planned.pop(0) if planned else 202
        return JSONResponse({"status": "success" if status < 400 else "error"}, status_code=status)

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/{path:path}", self._receive, methods=["POST"])])


@contextlib.asynccontextmanager
async def receiving() -> AsyncIterator[Receiver]:
    """A `Receiver` served on loopback for the block; its `url` is where it listens."""
    receiver = Receiver()
    async with serve(receiver.app()) as url:
        receiver.url = url
        yield receiver

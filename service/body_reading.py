"""Request bodies read in bounded time, and a client gone mid-body told in one line.

`BodyDeadline` wraps the application: while a handler reads a request's body, the whole of it must
arrive within `WARDEN_BODY_TIMEOUT_SECONDS` of the request reaching the application (a total, not a
time between reads: a client sending a byte every few seconds is cut as surely as a silent one). When
it does not, the request is answered 408 and its connection closed, freeing it for others.

A client that goes away mid-body (LiveKit giving up, a proxy's timeout) makes Starlette raise
`ClientDisconnect` in the handler; uvicorn would log it at ERROR with a full traceback, once per
disconnect (4,010 tracebacks, 174k lines in one run). Here it is one INFO line, and nothing is sent.

A request whose whole body had arrived when it reached the application needs no deadline: the web
process's protocol (`service.connections`) marks its scope with `BODY_RECEIVED`, and the webhook's
route (`service.direct_route`) then reads it without a timer.

The headers' own deadline, and the connections nobody's handler reads, are `service.connections`'.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from workers.core.personal import mask_phone

log = logging.getLogger("warden.web")

# The scope's key saying the request's whole body had arrived, unread, when it was parsed (set by
# `service.connections.ReadDeadlines`; absent under another server, where the deadline holds as ever).
BODY_RECEIVED = "warden.body_received"


class BodyTimedOut(Exception):
    """The request's body did not arrive within the deadline (not an `OSError`: no handler of the
    application's may take it for a database or queue failure)."""


class BodyDeadline:
    """ASGI middleware bounding the time a request's body takes to arrive (see the module's doc)."""

    def __init__(self, app: ASGIApp, timeout: float) -> None:
        self.app = app
        self.timeout = timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        body = _Body(receive, asyncio.get_running_loop().time() + self.timeout)
        answering = False

        async def send_noting(message: Message) -> None:
            nonlocal answering
            answering = answering or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, body.receive, send_noting)
        except BodyTimedOut:
            log.info(
                "cut %s: request body not complete within %g s (%s); answered 408",
                _request(scope),
                self.timeout,
                _progress(scope, body.received),
            )
            if not answering:
                await _answer_408(send, self.timeout)
        except ClientDisconnect:
            client_gone(scope, body.received)
        finally:
            body.done()


def client_gone(scope: Scope, received: int | None) -> None:
    """The one line for a client that went away before its request was answered (`received`: the
    bytes of its body that had arrived; None, all of them)."""
    progress = "its whole body received" if received is None else _progress(scope, received)
    log.info("client went away mid-request: %s (%s)", _request(scope), progress)


class _Body:
    """One request's `receive`, cancelled at the deadline while it waits for the body.

    One timer a request, set when the body is first asked for and cancelled once it is in (what
    `asyncio.timeout` around each read would do, at a third of its cost: this is every webhook's path)."""

    __slots__ = ("_deadline", "_receive", "_task", "_timer", "_waiting", "complete", "late", "received")

    def __init__(self, receive: Receive, deadline: float) -> None:
        self._receive, self._deadline = receive, deadline
        self._timer: asyncio.TimerHandle | None = None
        self._task: asyncio.Task[Any] | None = None
        self._waiting = False
        self.received = 0
        self.complete = False
        self.late = False

    async def receive(self) -> Message:
        if self.complete:
            return await self._receive()  # after the body: a disconnect, whenever it comes
        if self.late:
            raise BodyTimedOut
        if self._timer is None:
            self._task = asyncio.current_task()
            self._timer = asyncio.get_running_loop().call_at(self._deadline, self._expire)
        self._waiting = True
        try:
            message = await self._receive()
        except asyncio.CancelledError:
            if self.late and self._task is not None and self._task.uncancel() == 0:
                raise BodyTimedOut from None
            raise  # cancelled by someone else too (the server stopping): theirs to handle
        finally:
            self._waiting = False
        if message["type"] == "http.request":
            self.received += len(message.get("body", b""))
            if not message.get("more_body", False):
                self.complete = True
                self.done()
        return message

    def _expire(self) -> None:
        self.late = True
        if self._waiting and self._task is not None:
            self._task.cancel()

    def done(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


async def _answer_408(send: Send, timeout: float) -> None:
    body = json.dumps(
        {"error": f"request body not complete within {timeout:g} s"}, separators=(",", ":")
    ).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),
    ]
    await send({"type": "http.response.start", "status": 408, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _request(scope: Scope) -> str:
    """`POST /webhook from 10.0.0.7`, with the path's control characters escaped (it is the client's
    text, and a newline in it must not start a line of its own) and phone numbers masked."""
    path = repr(str(scope.get("path", "")))[1:-1]
    client = scope.get("client")
    return f"{scope.get('method', '')} {mask_phone(path)} from {client[0] if client else 'a client'}"


def _progress(scope: Scope, received: int) -> str:
    declared = next((v for k, v in scope.get("headers", []) if k == b"content-length"), b"")
    of = f" of {int(declared)}" if declared.isdigit() else ""
    return f"{received}{of} bytes of its body received"

"""Request bodies read in bounded time, and a client gone mid-body told in one line.

`BodyDeadline` wraps the application: while a handler reads a request's body, the whole of it must
arrive within `WARDEN_BODY_TIMEOUT_SECONDS` of the request reaching the application (a total, not a
time between reads: a client sending a byte every few seconds is cut as surely as a silent one). When
it does not, the request is answered 408 and its connection closed, freeing it for others.

A client that goes away mid-body (LiveKit giving up, a proxy's timeout) makes Starlette raise
`ClientDisconnect` in the handler; uvicorn would log it at ERROR with a full traceback, once per
disconnect (4,010 tracebacks, 174k lines in one run). Here it is one INFO line, and nothing is sent.

The headers' own deadline, and the connections nobody's handler reads, are `service.connections`'.
"""

from __future__ import annotations

import asyncio
import json
import logging

from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from workers.core.personal import mask_phone

log = logging.getLogger("warden.web")


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
        deadline = asyncio.get_running_loop().time() + self.timeout
        received = 0
        complete = False
        answering = False

        async def receive_in_time() -> Message:
            nonlocal received, complete
            if complete:
                return await receive()  # after the body: a disconnect, whenever it comes
            try:
                async with asyncio.timeout_at(deadline):
                    message = await receive()
            except TimeoutError:
                raise BodyTimedOut from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                complete = not message.get("more_body", False)
            return message

        async def send_noting(message: Message) -> None:
            nonlocal answering
            answering = answering or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive_in_time, send_noting)
        except BodyTimedOut:
            log.info(
                "cut %s: request body not complete within %g s (%s); answered 408",
                _request(scope),
                self.timeout,
                _progress(scope, received),
            )
            if not answering:
                await _answer_408(send, self.timeout)
        except ClientDisconnect:
            log.info("client went away mid-request: %s (%s)", _request(scope), _progress(scope, received))


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

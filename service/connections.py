"""How the web process reads requests off its connections: headers in bounded time and size, the rest
of a body nobody reads any more in bounded time, and no more connections than the process has files for.

uvicorn on its own reads a request's headers for as long as a client cares to send them (its
keep-alive timer runs only between requests, and stops at the first byte of the next one), takes
headers of any size with httptools, and accepts connections until the process runs out of file
descriptors: 1,100 idle connections were never cut, and with 1,024 open files a valid webhook then
failed. `ReadDeadlines` is uvicorn's httptools protocol with:

- **a header deadline**, `WARDEN_HEADER_TIMEOUT_SECONDS` from the connection's opening (or from the
  first read of a later request on it) to the end of the request's headers. A client that sent part
  of a request is answered 408; one that sent nothing (a browser's speculative connection, a port
  scan) is closed without a word, and logged at DEBUG only.
- **a header size bound** (`MAX_HEADER_BYTES`): over it, 431.
- **the rest of a body after an early answer** (413 from `Content-Length`, 503 over
  `WARDEN_WEB_CONCURRENCY`): it has `WARDEN_BODY_TIMEOUT_SECONDS` to arrive, then the connection is
  closed; once it has, the next request has the header deadline (uvicorn's keep-alive timer, stopped
  by the body's bytes, would never run again). While the application reads a body,
  `service.body_reading` bounds it and answers 408.
- **a cap on open connections**, what the open-files limit leaves once Redis, the database and the
  process's own files are counted (`service.server`): a connection beyond it is answered 503 and
  closed at once, so that the process always has descriptors for Redis and the database. (Requests
  in progress have their own limit below that, `service.concurrency`.)

`tests/unit/test_uvicorn_hooks.py` checks that the uvicorn installed still has the hooks used here.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any, cast

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from service.body_reading import BODY_RECEIVED

log = logging.getLogger("warden.web")

MAX_HEADER_BYTES = 64 * 1024  # LiveKit's are well under 2 KiB; nginx allows 32 KiB, Node.js 16 KiB
REFUSALS_LOGGED_EVERY_SECONDS = 10.0
HOLD_BYTES = 64 * 1024  # what `OneWritePerTurn` holds at most: a webhook's answer is ~100 bytes


@dataclass
class ReadLimits:
    """The bounds one web server holds its connections to (see the module's doc)."""

    header_timeout: float
    body_timeout: float
    max_open: int
    max_header_bytes: int = MAX_HEADER_BYTES
    _refused: int = field(default=0, init=False)
    _refusal_logged_at: float = field(default=float("-inf"), init=False)

    def refused_one(self, open_now: int) -> None:
        """Count a connection closed at once for want of files; say so at most every 10 s (a flood of
        connections must not become a flood of log lines)."""
        self._refused += 1
        now = time.monotonic()
        if now - self._refusal_logged_at >= REFUSALS_LOGGED_EVERY_SECONDS:
            log.warning(
                "%d connections open, the most this process keeps (its open-files limit): %d new "
                "connection(s) answered 503 and closed at once; see docs/operations.md for a proxy in front",
                open_now,
                self._refused,
            )
            self._refused, self._refusal_logged_at = 0, now


class WardenConfig(uvicorn.Config):
    """uvicorn's configuration with the read limits, for `ReadDeadlines` (which uvicorn builds with
    the configuration only)."""

    def __init__(self, app: Any, *, limits: ReadLimits, **kwargs: Any) -> None:
        super().__init__(app, http=ReadDeadlines, **kwargs)
        self.read_limits = limits


def refusal(status: int, message: str) -> bytes:
    """A whole HTTP/1.1 response that closes the connection, with Warden's `{"error": ...}` body."""
    body = json.dumps({"error": message}, separators=(",", ":")).encode()
    head = (
        f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    )
    return head.encode() + body


class OneWritePerTurn:
    """A connection's transport whose writes within one turn of the event loop go out as one: a
    response's head and body (uvicorn writes each as it comes) make one packet, not two. The client
    sees the same bytes, in the same order, a turn later at most; closing sends what is held first.

    Flow control is the transport's, as without it: at most `HOLD_BYTES` are held (a write that would
    hold more sends what is held and itself at once), and nothing is held while the transport still
    has bytes it could not send. So a streaming response that writes faster than the client reads
    fills the transport's buffer, which pauses uvicorn's writing, instead of a buffer here."""

    __slots__ = ("_held", "_loop", "_size", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport, self._loop = transport, loop
        self._held: list[bytes] = []
        self._size = 0

    def write(self, data: bytes) -> None:
        if self._held:
            self._held.append(data)
            self._size += len(data)
            if self._size > HOLD_BYTES:
                self._flush()
        elif len(data) > HOLD_BYTES or self._transport.get_write_buffer_size():
            if not self._transport.is_closing():
                self._transport.write(data)
        else:
            self._loop.call_soon(self._flush)
            self._held.append(data)
            self._size = len(data)

    def _flush(self) -> None:
        if self._held:
            data = b"".join(self._held) if len(self._held) > 1 else self._held[0]
            self._held.clear()
            self._size = 0
            if not self._transport.is_closing():
                self._transport.write(data)

    def close(self) -> None:
        self._flush()
        self._transport.close()

    def is_closing(self) -> bool:  # asked several times a request: not through `__getattr__`
        return self._transport.is_closing()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class ReadDeadlines(HttpToolsProtocol):
    """uvicorn's httptools protocol, with the bounds of the module's doc."""

    def __init__(
        self,
        config: uvicorn.Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        if not isinstance(config, WardenConfig):
            raise TypeError("ReadDeadlines needs a WardenConfig (service.connections)")
        self.limits = config.read_limits
        # uvicorn builds each request's access line (client, path) before its logger drops it: only
        # when the line would be written (WARDEN_LOG_LEVEL INFO or DEBUG), as uvicorn's own check can't tell.
        self.access_log = self.access_log and self.access_logger.isEnabledFor(logging.INFO)
        self._timer: asyncio.TimerHandle | None = None
        self._awaiting_headers = True  # the parser is between requests or inside a request's headers
        self._header_bytes = 0  # received since the last request ended
        self._request_begun = False  # a byte of the awaited request has come
        self._requests_ended = 0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.transport = OneWritePerTurn(transport, self.loop)  # type: ignore[assignment]
        if len(self.connections) > self.limits.max_open:
            transport.write(refusal(503, "too many open connections, retry later"))
            transport.close()
            self.limits.refused_one(len(self.connections))
            return
        self._arm(self.limits.header_timeout, self._headers_late)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        awaited, ended = self._awaiting_headers, self._requests_ended
        super().data_received(data)
        if self.transport.is_closing() or not self._awaiting_headers:
            return
        if awaited and ended == self._requests_ended:  # no headers or request ended in these bytes
            self._header_bytes += len(data)
            if self._header_bytes > self.limits.max_header_bytes:
                limit = self.limits.max_header_bytes
                log.info("cut %s: request headers over %d bytes; answered 431", self._peer(), limit)
                self._cut(431, f"request headers over {limit} bytes")
                return
        if self._request_begun and self._timer is None:
            # A later request on a kept-alive connection, its headers not all in one read: they have
            # their time from now. (Set here, not at the request's first byte, so that the usual
            # request, whole in one read, costs no timer.)
            self._arm(self.limits.header_timeout, self._headers_late)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._request_begun = True

    def on_headers_complete(self) -> None:
        self._awaiting_headers = False
        self._disarm()
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        cycle = self.cycle
        if not cycle.response_complete:  # the whole body is in, unread: no deadline needed for it
            cast(dict[str, Any], cycle.scope)[BODY_RECEIVED] = True
        self._disarm()
        self._awaiting_headers, self._header_bytes, self._request_begun = True, 0, False
        self._requests_ended += 1
        if self.cycle.response_complete:  # answered early, its body in at last: now idle
            self._arm(self.limits.header_timeout, self._headers_late)

    def on_response_complete(self) -> None:
        super().on_response_complete()
        cycle = self.cycle
        if not self.transport.is_closing() and cycle.response_complete and cycle.more_body:
            # Answered before its body was in (413 on Content-Length, 503): the rest has its time.
            self._arm(self.limits.body_timeout, self._body_late)

    def _arm(self, seconds: float, then: Callable[[], None]) -> None:
        self._disarm()
        self._timer = self.loop.call_later(seconds, then)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _headers_late(self) -> None:
        self._timer = None
        if self.transport.is_closing():
            return
        timeout = self.limits.header_timeout
        if not self._request_begun:
            log.debug("closed %s: no request within %g s", self._peer(), timeout)
            self.transport.close()
        elif self.cycle is not None and not self.cycle.response_complete:
            # A pipelined request's headers stalled while the previous answer is being written.
            log.info("cut %s: request headers not complete within %g s", self._peer(), timeout)
            self.transport.close()
        else:
            log.info("cut %s: request headers not complete within %g s; answered 408", self._peer(), timeout)
            self._cut(408, f"request headers not complete within {timeout:g} s")

    def _body_late(self) -> None:
        self._timer = None
        if not self.transport.is_closing():
            log.info(
                "cut %s: request body not complete %g s after it was answered",
                self._peer(),
                self.limits.body_timeout,
            )
            self.transport.close()

    def _cut(self, status: int, message: str) -> None:
        self.transport.write(refusal(status, message))
        self.transport.close()

    def _peer(self) -> str:
        return f"{self.client[0]}:{self.client[1]}" if self.client else "a client"

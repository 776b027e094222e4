"""`service.connections.ReadDeadlines` extends uvicorn's httptools protocol through its parser callbacks
and reads a few of its attributes; a uvicorn that renamed them would leave the web's read deadlines
silently off, so this says which ones, by name (tests/component/test_slow_clients.py shows they work)."""

from __future__ import annotations

import asyncio

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle
from uvicorn.server import ServerState

from service.connections import ReadDeadlines, ReadLimits, WardenConfig

OVERRIDDEN = (
    "connection_made",
    "connection_lost",
    "data_received",
    "on_message_begin",
    "on_headers_complete",
    "on_message_complete",
    "on_response_complete",
)
READ = ("connections", "cycle", "transport", "client", "loop")
CYCLE_READ = ("response_complete", "more_body", "scope")  # scope: the one its app is called with


async def _app(scope: object, receive: object, send: object) -> None:
    """Never called: the protocol is only built."""


def test_uvicorn_still_has_the_hooks_the_read_deadlines_use() -> None:
    missing = [name for name in OVERRIDDEN if not callable(getattr(HttpToolsProtocol, name, None))]
    assert not missing, (
        f"uvicorn's HttpToolsProtocol no longer has {missing}: re-check service/connections.py"
    )
    limits = ReadLimits(header_timeout=1, body_timeout=1, max_open=10)
    config = WardenConfig(_app, limits=limits, log_config=None)
    loop = asyncio.new_event_loop()
    try:
        protocol = ReadDeadlines(config, ServerState(), {}, _loop=loop)
    finally:
        loop.close()
    assert [name for name in READ if not hasattr(protocol, name)] == []
    cycle_fields = RequestResponseCycle.__init__.__code__.co_names
    assert [name for name in CYCLE_READ if name not in cycle_fields] == []

"""Run an ASGI app on a real loopback socket inside the caller's event loop (simulator and tests)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator

import uvicorn
from starlette.types import ASGIApp

from devtools.embedded_redis import free_port

KEEPALIVE = 75  # seconds, as `WARDEN_KEEPALIVE_SECONDS`'s default


class ReadyServer(uvicorn.Server):
    """uvicorn's server with an event set once it listens (the tests' servers share it)."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.ready = asyncio.Event()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        self.ready.set()

    def install_signal_handlers(self) -> None:
        """Leave signals to pytest."""


@contextlib.asynccontextmanager
async def serve(app: ASGIApp, *, port: int = 0, host: str = "127.0.0.1") -> AsyncIterator[str]:
    """Serve `app` on `host`:`port` (a free port by default) with its lifespan; yield its base URL;
    shut it down afterwards."""
    port = port or free_port()
    # Kept-alive connections outlast their clients' (Warden's LiveKit client, aiohttp: 15 s; httpx: 5 s),
    # as Warden's web (`WARDEN_KEEPALIVE_SECONDS`) and livekit-server do: uvicorn's 5 s raced their calls.
    config = uvicorn.Config(
        app, host=host, port=port, log_level="warning", lifespan="on", timeout_keep_alive=KEEPALIVE
    )
    server = ReadyServer(config)
    task = asyncio.create_task(server.serve())
    ready = asyncio.create_task(server.ready.wait())
    done, _ = await asyncio.wait({task, ready}, return_when=asyncio.FIRST_COMPLETED)
    if task in done:
        ready.cancel()
        raise RuntimeError(f"could not serve on {host}:{port} (in use?)") from task.exception()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        await task

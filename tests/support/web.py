"""Warden's web process as `python -m service` serves it (`service.server.web_config`: uvicorn with
Warden's read limits), on a loopback port inside the test's own event loop, so that a test can hold
raw connections against it and read its log records as they are written."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import uvicorn

from devtools.embedded_redis import free_port
from devtools.simulator.serving import ReadyServer
from service.app import create_app
from service.server import web_config
from workers.settings import Settings


@dataclass
class Web:
    host: str
    port: int
    server: uvicorn.Server

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def requests_done(self) -> None:
        """Wait for every request the server has started to have run to its end (its log lines
        written)."""
        await asyncio.gather(*list(self.server.server_state.tasks), return_exceptions=True)


@contextlib.asynccontextmanager
async def serve_web(settings: Settings) -> AsyncIterator[Web]:
    """Serve `create_app(settings)` with the web process's uvicorn configuration on a free port of
    `settings.warden_host`; shut it down afterwards."""
    port = free_port()
    server = ReadyServer(web_config(settings, create_app(settings), port=port))
    task = asyncio.create_task(server.serve())
    ready = asyncio.create_task(server.ready.wait())
    done, _ = await asyncio.wait({task, ready}, return_when=asyncio.FIRST_COMPLETED)
    if task in done:
        ready.cancel()
        raise RuntimeError(f"could not serve on port {port}") from task.exception()
    try:
        yield Web(settings.warden_host, port, server)
    finally:
        server.should_exit = True
        await task


class Records(logging.Handler):
    """Log records of Warden's and uvicorn's loggers, as they are written."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if not any(r is record for r in self.records):  # seen through two loggers when propagating
            self.records.append(record)

    def lines(self, level: int = logging.DEBUG) -> list[str]:
        """`LEVEL logger: message` of each record at `level` or above, with its traceback if any."""
        formatter = logging.Formatter("%(levelname)s %(name)s: %(message)s")
        return [formatter.format(r) for r in self.records if r.levelno >= level]


@contextlib.contextmanager
def recorded_logs() -> Iterator[Records]:
    """Record what `warden.*` and `uvicorn.*` log at INFO and above (uvicorn's text configuration keeps
    its records from the root logger, so the handler sits on both)."""
    records = Records()
    warden = logging.getLogger("warden")
    loggers = [logging.getLogger(), logging.getLogger("uvicorn")]
    level = warden.level
    warden.setLevel(logging.INFO)
    for logger in loggers:
        logger.addHandler(records)
    try:
        yield records
    finally:
        for logger in loggers:
            logger.removeHandler(records)
        warden.setLevel(level)

"""A stand-in PostgreSQL that refuses every session as a server starting up or shutting down does:
SQLSTATE 57P03 (`cannot_connect_now`), "the database system is starting up" (or "... shutting down").
Real drivers meet it as they would during `pg_ctl restart`, with no server restarted."""

from __future__ import annotations

import asyncio
import contextlib
import struct
from collections.abc import AsyncIterator

STARTING_UP = "the database system is starting up"
SHUTTING_DOWN = "the database system is shutting down"
_SSL_REQUEST = 80877103


@contextlib.asynccontextmanager
async def cannot_connect_now(message: str = STARTING_UP) -> AsyncIterator[int]:
    """A loopback port whose server answers each session's start-up with 57P03 and `message`."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                (length,) = struct.unpack("!i", await reader.readexactly(4))
                (code,) = struct.unpack("!i", (await reader.readexactly(length - 4))[:4])
                if code != _SSL_REQUEST:  # the start-up message itself
                    break
                writer.write(b"N")  # no TLS here; the client goes on in plain text
            fields = b"SFATAL\0VFATAL\0C57P03\0M" + message.encode() + b"\0\0"
            writer.write(b"E" + struct.pack("!i", 4 + len(fields)) + fields)
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    async with server:
        yield int(server.sockets[0].getsockname()[1])

"""Stand-ins for a PostgreSQL that cannot be reached, met by real drivers as they would meet the real thing
with no server stopped or restarted: one that refuses every session as a server starting up or shutting
down does, SQLSTATE 57P03 (`cannot_connect_now`), "the database system is starting up" (or "... shutting
down"), as during `pg_ctl restart`; a stopped one (`stopped`: nobody listens, every connection is
refused); one whose connections are reset as soon as they are made (`resetting`)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
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


@contextlib.asynccontextmanager
async def stopped() -> AsyncIterator[int]:
    """A loopback port nobody listens on (bound, so that no other process takes it meanwhile): every
    connection to it is refused, as to a stopped server."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield int(sock.getsockname()[1])


@contextlib.asynccontextmanager
async def resetting() -> AsyncIterator[int]:
    """A loopback port whose server accepts each connection and resets it at once."""

    async def drop(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.transport.abort()

    server = await asyncio.start_server(drop, "127.0.0.1", 0)
    async with server:
        yield int(server.sockets[0].getsockname()[1])

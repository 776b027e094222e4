"""`service.connections.OneWritePerTurn`: a response's head and body reach the client as one write, the
same bytes in the same order, closing the connection sends what is held before it closes, and a
stream written faster than its client reads is paused by the transport's flow control, not held."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

from service.connections import HOLD_BYTES, OneWritePerTurn


class Transport:
    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        assert not self.closed, "written after close"
        self.writes.append(data)

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def get_write_buffer_size(self) -> int:
        return 0

    def get_extra_info(self, name: str) -> Any:
        return ("127.0.0.1", 1234) if name == "peername" else None


async def test_head_and_body_of_one_turn_go_out_as_one_write() -> None:
    raw = Transport()
    transport = OneWritePerTurn(raw, asyncio.get_running_loop())  # type: ignore[arg-type]
    transport.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n")
    transport.write(b"{}")
    assert raw.writes == []
    await asyncio.sleep(0)
    assert raw.writes == [b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}"]
    transport.write(b"next")
    await asyncio.sleep(0)
    assert raw.writes[1:] == [b"next"]
    assert transport.get_extra_info("peername") == ("127.0.0.1", 1234)  # the rest is the transport's


async def test_close_sends_what_is_held_first() -> None:
    raw = Transport()
    transport = OneWritePerTurn(raw, asyncio.get_running_loop())  # type: ignore[arg-type]
    transport.write(b"HTTP/1.1 413 Content Too Large\r\nconnection: close\r\n\r\n")
    transport.close()
    assert raw.writes == [b"HTTP/1.1 413 Content Too Large\r\nconnection: close\r\n\r\n"]
    assert raw.closed and transport.is_closing()
    await asyncio.sleep(0)  # the turn's flush finds nothing left to send
    assert len(raw.writes) == 1


async def test_writes_over_the_bound_go_out_at_once_in_order() -> None:
    raw = Transport()
    transport = OneWritePerTurn(raw, asyncio.get_running_loop())  # type: ignore[arg-type]
    transport.write(b"head")
    big = b"x" * (HOLD_BYTES + 1)
    transport.write(big)
    assert raw.writes == [b"head" + big]  # sent within the turn, what was held first
    transport.write(big)
    assert raw.writes[1:] == [big]
    await asyncio.sleep(0)
    assert len(raw.writes) == 2


class Reader(asyncio.Protocol):
    """The server's side of a connection, told by its transport when to stop writing."""

    paused = False

    def pause_writing(self) -> None:
        self.paused = True

    def resume_writing(self) -> None:
        self.paused = False


async def test_a_stream_written_faster_than_the_client_reads_is_paused_not_held() -> None:
    """A streaming response whose chunks come within one turn (an async generator that never waits)
    to a client that reads nothing: the transport's buffer fills and pauses the writer, as it does
    without `OneWritePerTurn`, long before 64 MiB are written."""
    loop = asyncio.get_running_loop()
    ours, client = socket.socketpair()
    try:
        raw, reader = await loop.create_connection(Reader, sock=ours)
        transport = OneWritePerTurn(raw, loop)
        chunk, written = b"x" * 4096, 0
        while not reader.paused and written < 64 * 1024 * 1024:
            transport.write(chunk)
            written += len(chunk)
        assert reader.paused, "64 MiB held for a client that reads nothing"
        raw.abort()
    finally:
        client.close()

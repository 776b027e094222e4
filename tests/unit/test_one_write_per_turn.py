"""`service.connections.OneWritePerTurn`: a response's head and body reach the client as one write, the
same bytes in the same order, and closing the connection sends what is held before it closes."""

from __future__ import annotations

import asyncio
from typing import Any

from service.connections import OneWritePerTurn


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

"""Slow, stalled and vanishing clients against the web process as `python -m service` serves it (uvicorn
on a loopback port with Warden's read limits, `tests.support.web`): every stalled read is cut within
its bound while valid webhooks are served, connections over the limit are answered 503, and a client
that goes away mid-body is one INFO line, not a traceback."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import AsyncIterator

import httpx
import pytest

from service.server import FILES_RESERVED
from tests.support.helpers import body, sign
from tests.support.settings import KEY, SECRET, make_settings
from tests.support.web import Web, recorded_logs, serve_web

BOUND = 1.0  # the header and body timeouts of these tests, in seconds
SLACK = 2.0  # how late a cut may come on a loaded machine (two shared cores)
SLOW_CLIENTS = 100


def webhook(n: int) -> tuple[bytes, str]:
    raw = body("participant_joined", id=f"EV_slow{n}", created_at=1, room=f"call-{n}")
    return raw, sign(raw, KEY, SECRET)


@pytest.fixture
def settings_for(redis_url: str, tmp_path: object) -> object:
    def settings(**overrides: object) -> object:
        return make_settings(
            redis_url=redis_url,
            database_url=f"sqlite:///{tmp_path}/w.db",
            warden_host="127.0.0.1",
            warden_header_timeout_seconds=BOUND,
            warden_body_timeout_seconds=BOUND,
            **overrides,
        )

    return settings


@pytest.fixture
async def web(settings_for: object) -> AsyncIterator[Web]:
    async with serve_web(settings_for()) as web:  # type: ignore[operator]
        yield web


class Client:
    """A raw connection, for clients that httpx would not play: stalling, half-sending, vanishing."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def connect(cls, web: Web) -> Client:
        return cls(*await asyncio.open_connection(web.host, web.port))

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def stall_in_body(self, n: int) -> tuple[float, float]:
        """Send a signed webhook's headers, wait for the application to ask for the body (`100
        Continue`: the server holds the request), send a tenth of it, and stall; return when the headers
        went out and when the asking was read (`time.monotonic()`): the body's deadline, which runs from
        the application's call, began between the two (with 100 clients in one loop, far apart)."""
        raw, token = webhook(n)
        sent = time.monotonic()
        await self.send(
            b"POST /webhook HTTP/1.1\r\nHost: warden\r\nContent-Type: application/webhook+json\r\n"
            + f"Authorization: {token}\r\nContent-Length: {len(raw)}\r\n".encode()
            + b"Expect: 100-continue\r\n\r\n"
        )
        assert await self.reader.readuntil(b"\r\n\r\n") == b"HTTP/1.1 100 Continue\r\n\r\n"
        asked = time.monotonic()
        await self.send(raw[: len(raw) // 10])
        return sent, asked

    async def until_closed(self, timeout: float) -> tuple[bytes, float]:
        """All the server sends until it closes the connection, and when (`time.monotonic()`)."""
        async with asyncio.timeout(timeout):
            answer = await self.reader.read()
        return answer, time.monotonic()

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError):
            await self.writer.wait_closed()


async def post_webhook(web: Web, n: int) -> httpx.Response:
    raw, token = webhook(n)
    async with httpx.AsyncClient(base_url=web.url) as client:
        return await client.post("/webhook", content=raw, headers={"Authorization": token})


async def test_stalled_bodies_are_cut_within_the_bound_while_a_valid_webhook_is_served(web: Web) -> None:
    slow = [await Client.connect(web) for _ in range(SLOW_CLIENTS)]
    try:
        asked = await asyncio.gather(*(c.stall_in_body(n) for n, c in enumerate(slow)))
        ok = await post_webhook(web, 1000)
        served = time.monotonic()
        assert (ok.status_code, ok.json()["status"]) == (200, "queued")
        cuts = await asyncio.gather(*(c.until_closed(BOUND + SLACK) for c in slow))
    finally:
        await asyncio.gather(*(c.close() for c in slow))
    assert served < min(at for _, at in cuts)  # served while every slow client still hung
    for (answer, at), (sent, since) in zip(cuts, asked, strict=True):
        assert answer.startswith(b"HTTP/1.1 408 ")
        assert b"request body not complete within 1 s" in answer
        assert at - sent >= BOUND * 0.9  # the deadline began after the headers went out
        assert at - since <= BOUND + SLACK  # and before the asking was read


async def test_half_sent_headers_and_silent_connections_are_cut(web: Web) -> None:
    half, silent = await Client.connect(web), await Client.connect(web)
    try:
        opened = time.monotonic()
        await half.send(b"POST /webhook HTTP/1.1\r\nHost: warden\r\nContent-Le")
        (answer, at), (nothing, silent_at) = await asyncio.gather(
            half.until_closed(BOUND + SLACK), silent.until_closed(BOUND + SLACK)
        )
    finally:
        await asyncio.gather(half.close(), silent.close())
    assert answer.startswith(b"HTTP/1.1 408 ") and b"request headers not complete within 1 s" in answer
    assert nothing == b""  # nothing asked, nothing answered: closed
    for cut in (at, silent_at):
        assert BOUND * 0.9 <= cut - opened <= BOUND + SLACK
    assert (await post_webhook(web, 1)).status_code == 200


async def test_half_sent_headers_of_a_later_request_on_a_kept_alive_connection_are_cut(web: Web) -> None:
    """uvicorn's keep-alive timer stops at a later request's first byte; its headers still have a bound."""
    client = await Client.connect(web)
    try:
        await client.send(b"GET /healthz HTTP/1.1\r\nHost: warden\r\n\r\n")
        assert (await client.reader.readuntil(b'{"status":"ok"}')).startswith(b"HTTP/1.1 200 ")
        await client.send(b"GET /healthz HTTP/1.1\r\nHo")
        sent = time.monotonic()
        answer, at = await client.until_closed(BOUND + SLACK)
    finally:
        await client.close()
    assert answer.startswith(b"HTTP/1.1 408 ")
    assert BOUND * 0.9 <= at - sent <= BOUND + SLACK


async def test_a_connection_idle_between_requests_is_kept_for_the_keepalive_setting(
    settings_for: object,
) -> None:
    """An idle kept-alive connection lasts `WARDEN_KEEPALIVE_SECONDS` (not uvicorn's 5 s, shorter than
    the clients' own: the server closing first raced their next request), then is closed."""
    keepalive = 2 * BOUND  # past the header bound, so that it is the keep-alive that closes it
    async with serve_web(settings_for(warden_keepalive_seconds=keepalive)) as web:  # type: ignore[operator]
        client = await Client.connect(web)
        try:
            await client.send(b"GET /healthz HTTP/1.1\r\nHost: warden\r\n\r\n")
            assert (await client.reader.readuntil(b'{"status":"ok"}')).startswith(b"HTTP/1.1 200 ")
            answered = time.monotonic()
            rest, at = await client.until_closed(keepalive + SLACK)
        finally:
            await client.close()
    assert rest == b""
    assert keepalive * 0.9 <= at - answered <= keepalive + SLACK


async def test_headers_over_the_size_bound_are_refused(web: Web) -> None:
    client = await Client.connect(web)
    try:
        await client.send(b"GET /healthz HTTP/1.1\r\nHost: warden\r\nX-Filler: " + b"a" * 100_000)
        answer, _ = await client.until_closed(SLACK)
    finally:
        await client.close()
    assert answer.startswith(b"HTTP/1.1 431 ")


async def test_a_body_dribbling_after_an_early_answer_is_cut(settings_for: object) -> None:
    """Answered 413 on its Content-Length, a client sends the rest a byte at a time: each byte used to
    wake uvicorn's keep-alive timer again, for ever."""
    async with serve_web(settings_for(warden_max_body_bytes=100)) as web:  # type: ignore[operator]
        client = await Client.connect(web)

        async def dribble() -> None:
            while True:
                await client.send(b"x")
                await asyncio.sleep(0.1)  # the client's slowness, which this test is about

        dribbling: asyncio.Task[None] | None = None
        try:
            await client.send(b"POST /webhook HTTP/1.1\r\nHost: warden\r\nContent-Length: 1000\r\n\r\n")
            assert (await client.reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 413 ")
            answered = time.monotonic()
            dribbling = asyncio.create_task(dribble())
            _, at = await client.until_closed(BOUND + SLACK)
        finally:
            if dribbling is not None:
                dribbling.cancel()
                await asyncio.gather(dribbling, return_exceptions=True)
            await client.close()
        assert BOUND * 0.9 <= at - answered <= BOUND + SLACK


async def test_a_connection_idle_after_an_early_answer_and_its_body_is_closed(settings_for: object) -> None:
    """Answered 413 early, the client sends the rest of its body, then nothing: uvicorn's keep-alive
    timer, stopped by the body's bytes, never ran again."""
    async with serve_web(settings_for(warden_max_body_bytes=100)) as web:  # type: ignore[operator]
        client = await Client.connect(web)
        try:
            await client.send(b"POST /webhook HTTP/1.1\r\nHost: warden\r\nContent-Length: 1000\r\n\r\n")
            answer = await client.reader.readuntil(b"\r\n\r\n")
            assert answer.startswith(b"HTTP/1.1 413 ")
            length = int(re.search(rb"content-length: (\d+)", answer)[1])  # type: ignore[index]
            await client.reader.readexactly(length)
            await client.send(b"x" * 1000)
            sent = time.monotonic()
            rest, at = await client.until_closed(BOUND + SLACK)
        finally:
            await client.close()
        assert rest == b""
        assert BOUND * 0.9 <= at - sent <= BOUND + SLACK


async def test_over_the_concurrency_limit_requests_are_answered_503_and_idle_connections_do_not_count(
    settings_for: object,
) -> None:
    async with serve_web(settings_for(warden_web_concurrency=5)) as web:  # type: ignore[operator]
        idle = [await Client.connect(web) for _ in range(20)]
        slow = [await Client.connect(web) for _ in range(5)]
        try:
            assert (await post_webhook(web, 100)).status_code == 200  # 20 idle connections: no work
            await asyncio.gather(*(c.stall_in_body(n) for n, c in enumerate(slow)))
            refused = await post_webhook(web, 101)  # 5 requests in progress: the limit
            assert (refused.status_code, refused.json()) == (
                503,
                {"error": "too many requests in progress, retry later"},
            )
            await asyncio.gather(*(c.until_closed(BOUND + SLACK) for c in slow))
            assert (await post_webhook(web, 102)).status_code == 200  # the slow ones were cut: room again
        finally:
            await asyncio.gather(*(c.close() for c in [*idle, *slow]))


async def test_connections_beyond_the_open_files_limit_are_closed_at_once(
    settings_for: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("service.server.open_files_limit", lambda _: FILES_RESERVED + 3)  # 3 connections
    async with serve_web(settings_for()) as web:  # type: ignore[operator]
        held = [await Client.connect(web) for _ in range(3)]
        extra = await Client.connect(web)
        try:
            await asyncio.gather(*(c.stall_in_body(n) for n, c in enumerate(held)))
            answer, _ = await extra.until_closed(SLACK)
        finally:
            await asyncio.gather(*(c.close() for c in [*held, extra]))
    assert answer.startswith(b"HTTP/1.1 503 ") and b"too many open connections" in answer


async def test_a_stalled_client_does_not_hold_up_a_shutdown(settings_for: object) -> None:
    """uvicorn stops gracefully by waiting for every request in progress: one stalled body used to hold
    a deploy's SIGTERM for ever."""
    async with asyncio.timeout(BOUND + SLACK + 5):  # if it fails, it fails instead of hanging
        async with serve_web(settings_for()) as web:  # type: ignore[operator]
            client = await Client.connect(web)
            await client.stall_in_body(1)
            stopping = time.monotonic()
        stopped = time.monotonic()
    await client.close()
    assert stopped - stopping <= BOUND + SLACK


async def test_a_client_gone_mid_body_is_one_info_line_without_traceback(web: Web) -> None:
    with recorded_logs() as logs:
        client = await Client.connect(web)
        await client.stall_in_body(7)
        client.writer.transport.abort()  # gone, as a client that gives up is
        async with asyncio.timeout(SLACK):
            await web.requests_done()  # the request's handling over, its lines written
    lines = logs.lines(logging.INFO)
    assert len(lines) == 1, lines
    assert lines[0].startswith(
        "INFO warden.web: client went away mid-request: POST /webhook from 127.0.0.1"
    ), lines
    assert "Traceback" not in lines[0] and "bytes of its body received" in lines[0]

"""The jobs tier's guard (tests/jobs/conftest.py): a test here that starts a process or connects to a
server fails, saying so."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys

import pytest


def test_a_process_is_refused() -> None:
    with pytest.raises(pytest.fail.Exception, match="tests/jobs runs in memory"):
        subprocess.run([sys.executable, "-c", "pass"], check=False)


async def test_a_connection_is_refused_even_on_loopback() -> None:
    with pytest.raises(pytest.fail.Exception, match=r"a connection to \('127\.0\.0\.1', 6379\)"):
        await asyncio.open_connection("127.0.0.1", 6379)
    with socket.socket() as sock, pytest.raises(pytest.fail.Exception, match=r"127\.0\.0\.1', 5432"):
        sock.connect(("127.0.0.1", 5432))

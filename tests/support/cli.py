"""Running the `warden` CLI inside a test whose event loop serves the app it talks to."""

from __future__ import annotations

import asyncio

import pytest

from service.cli import main


async def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    """`warden ARGV` in a thread (it blocks on HTTP to the app this loop serves): exit code and output."""
    with pytest.raises(SystemExit) as exited:
        await asyncio.to_thread(main, list(argv))
    return int(exited.value.code or 0), capsys.readouterr().out

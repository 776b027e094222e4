"""The unit tier's guard (tests/unit/conftest.py): a test here that starts a process fails, saying so."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

import pytest

NOTHING = [sys.executable, "-c", "pass"]


def test_subprocess_is_refused() -> None:
    with pytest.raises(pytest.fail.Exception, match="tests/unit is the pure tier"):
        subprocess.run(NOTHING, check=False)


async def test_asyncio_subprocesses_are_refused() -> None:
    with pytest.raises(pytest.fail.Exception, match="pure tier"):
        await asyncio.create_subprocess_exec(*NOTHING)


def test_os_system_and_fork_are_refused() -> None:
    with pytest.raises(pytest.fail.Exception, match=r"os\.system"):
        os.system("true")
    with pytest.raises(pytest.fail.Exception, match=r"os\.fork"):
        os.fork()

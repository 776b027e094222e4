"""Guards for the tiers that promise to need nothing outside their process: a test that starts a process
(subprocess, asyncio's subprocesses, which go through it, os.system, fork and spawn) or opens a
connection fails, naming what it tried. Used by fixtures, not patched in at import: `tests.support.run`
runs the unit, jobs and component tiers in one pytest process, and the component tier needs both."""

from __future__ import annotations

import os
import socket
import subprocess
from typing import Any, NoReturn

import pytest


def refuse_processes(monkeypatch: pytest.MonkeyPatch, why: str) -> None:
    """Fail the test that starts a process, with `why` (formatted with what it tried to run)."""

    def refuse(what: str) -> NoReturn:
        pytest.fail(why.format(what), pytrace=False)

    def execute_child(self: subprocess.Popen[Any], args: Any, *rest: Any, **options: Any) -> NoReturn:
        refuse(f"subprocess {args!r}")

    # Popen's one way to a child, taken by subprocess.run, check_output, os.popen and asyncio's subprocesses.
    monkeypatch.setattr(subprocess.Popen, "_execute_child", execute_child)
    monkeypatch.setattr(os, "system", lambda command: refuse(f"os.system {command!r}"))
    for name in ("fork", "forkpty", "posix_spawn", "posix_spawnp"):
        if hasattr(os, name):
            monkeypatch.setattr(os, name, lambda *args, _name=name, **kwargs: refuse(f"os.{_name}"))


def refuse_connections(monkeypatch: pytest.MonkeyPatch, why: str) -> None:
    """Fail the test that connects a socket anywhere (a server, even on loopback), with `why`."""

    def connect(self: socket.socket, address: Any) -> NoReturn:
        pytest.fail(why.format(f"a connection to {address!r}"), pytrace=False)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect)

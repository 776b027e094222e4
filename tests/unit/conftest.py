"""The unit tier is pure: no test here starts a process. Every way of starting one (subprocess, asyncio's
subprocesses, which go through it, os.system, fork and spawn) fails the test, naming what it tried to run.
A test that needs a tool of its own (a wheel build, promtool, lint-imports) belongs in tests/component.

A fixture, not a patch at import: `tests.support.run` runs the unit and component tiers in one pytest
process, and the component tier may start processes."""

from __future__ import annotations

import os
import subprocess
from typing import Any, NoReturn

import pytest

WHY = (
    "tests/unit is the pure tier and starts no process ({}); a test that needs one belongs in tests/component"
)


def _refuse(what: str) -> NoReturn:
    pytest.fail(WHY.format(what), pytrace=False)


@pytest.fixture(autouse=True)
def no_processes(monkeypatch: pytest.MonkeyPatch) -> None:
    def execute_child(self: subprocess.Popen[Any], args: Any, *rest: Any, **options: Any) -> NoReturn:
        _refuse(f"subprocess {args!r}")

    # Popen's one way to a child, taken by subprocess.run, check_output, os.popen and asyncio's subprocesses.
    monkeypatch.setattr(subprocess.Popen, "_execute_child", execute_child)
    monkeypatch.setattr(os, "system", lambda command: _refuse(f"os.system {command!r}"))
    for name in ("fork", "forkpty", "posix_spawn", "posix_spawnp"):
        if hasattr(os, name):
            monkeypatch.setattr(os, name, lambda *args, _name=name, **kwargs: _refuse(f"os.{_name}"))

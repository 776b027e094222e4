"""The unit tier is pure: no test here starts a process. Every way of starting one (subprocess, asyncio's
subprocesses, which go through it, os.system, fork and spawn) fails the test, naming what it tried to run.
A test that needs a tool of its own (a wheel build, promtool, lint-imports) belongs in tests/component.

A fixture (`tests.support.isolation`), not a patch at import: `tests.support.run` runs the unit and
component tiers in one pytest process, and the component tier may start processes."""

from __future__ import annotations

import pytest

from tests.support.isolation import refuse_processes

WHY = (
    "tests/unit is the pure tier and starts no process ({}); a test that needs one belongs in tests/component"
)


@pytest.fixture(autouse=True)
def no_processes(monkeypatch: pytest.MonkeyPatch) -> None:
    refuse_processes(monkeypatch, WHY)

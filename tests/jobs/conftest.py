"""The jobs tier's fixtures: a started worker in its in-memory world (`tests.support.jobs_world`), and the
tier's promise kept: no test here starts a process or connects to a server, even on loopback (that is
the component tier's business). The guard is a fixture, for `tests.support.run` runs this tier in one
pytest process with the component tier, which needs both."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.support.isolation import refuse_connections, refuse_processes
from tests.support.jobs_world import World, jobs_world

WHY = (
    "tests/jobs runs in memory, with no process and no server ({} was tried); a test that needs one belongs"
    " in tests/component"
)


@pytest.fixture(autouse=True)
def in_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    refuse_processes(monkeypatch, WHY)
    refuse_connections(monkeypatch, WHY)


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    async with jobs_world(tmp_path) as ready:
        yield ready

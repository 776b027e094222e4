"""The jobs tier's fixture: a started worker in its in-memory world (`tests.support.jobs_world`)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.support.jobs_world import World, jobs_world


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    async with jobs_world(tmp_path) as ready:
        yield ready

"""The worker's text log, as `python -m workers` writes it, given a room name that holds a newline and a
forged line, a terminal's escape sequences and a phone number: one record stays one line, the escapes
are shown and not obeyed, the number is masked (`tests.support.hostile`)."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import pytest

from tests.support.harness import harness
from tests.support.helpers import person
from tests.support.hostile import ESCAPES, FORGED_LINE, FORGING, RAW
from workers import logs


@pytest.fixture
def text_log() -> Iterator[io.StringIO]:
    """The root logger configured as the worker's (`logs.configure`), its handler writing here rather
    than to stderr; the test run's own handlers are put back afterwards."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    root.handlers.clear()
    written = io.StringIO()
    try:
        logs.configure("INFO", "text", process="worker")
        (ours,) = root.handlers
        assert isinstance(ours, logging.StreamHandler)
        ours.setStream(written)
        yield written
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)


async def test_a_room_name_cannot_forge_a_worker_log_line(
    text_log: io.StringIO, redis_url: str, database_url: str
) -> None:
    name = f"{FORGING}{ESCAPES} call-15550100"
    async with harness(redis_url, database_url) as h:
        assert await h.send("room_started", room=name, sid="RM_forge") == "applied"
        await h.send("participant_joined", room=name, sid="RM_forge", participant=person(f"bob\r{ESCAPES}"))
    lines = text_log.getvalue().splitlines()
    recorded = [line for line in lines if " INFO warden.worker: room_started EV_1 room=" in line]
    assert recorded == [
        recorded[0][:23]  # the record's own time
        + rf" INFO warden.worker: room_started EV_1 room=evil\n{FORGED_LINE}\x1b[2J\x1b]0;pwned\x07 "
        + "call-•••0100: applied"
    ]
    assert not [line for line in lines if line.startswith(FORGED_LINE)]
    assert not [c for c in RAW if c in "\n".join(lines)] and "15550100" not in "\n".join(lines)

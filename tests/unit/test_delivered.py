"""The worker clears delivered notices from the outbox in batches (`Delivered`). Whoever flushes (a job, the
sweep, shutdown) must find every notice delivered before it cleared when its flush returns, even while the
timed flush is still deleting: else the sweep leases and sends a delivered notice again (a restart or an
alert twice), and a clean-clone run once read three rows left where two were."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import pytest

from workers.jobs.delivery import outbox as delivery


async def test_a_flush_returns_only_once_the_timed_flush_under_way_has_cleared_its_notices(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cleared: list[str] = []
    deleting, let_go = asyncio.Event(), asyncio.Event()

    async def done(engine: Any, ids: Sequence[str]) -> None:
        if ids:
            deleting.set()
            await let_go.wait()  # the database is slow to answer
        cleared.extend(ids)

    monkeypatch.setattr(delivery.outbox, "done", done)
    delivered = delivery.Delivered(engine=None)  # type: ignore[arg-type]
    delivered.add(["notice-1"])
    delivered._closing.set()  # the timed flush starts now instead of in FLUSH_SECONDS
    await deleting.wait()

    flushing = asyncio.create_task(delivered.flush())
    await asyncio.sleep(0)  # let the flush run as far as it can
    assert not flushing.done() and cleared == []
    let_go.set()
    await flushing
    assert cleared == ["notice-1"]
    await delivered.close()

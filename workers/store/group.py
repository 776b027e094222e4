"""Group commit: the batches of concurrent jobs are recorded together, in one transaction.

Under load a worker runs dozens of jobs at once, each recording one room's events. Done one by one,
each costs a transaction of four statements, and SQLAlchemy's per-statement work, not the database,
is what limits the worker. `GroupCommit.record` hands a room's batch to a flusher that takes every
batch waiting (one per room, so that each room's order is plain) and records them with
`writer.record_group`, which writes a group as cheaply as one batch. At low load a flush holds one
batch, and costs what recording it alone would. Each caller gets exactly what
`writer.record_events` would have returned for its batch.
"""

from __future__ import annotations

import asyncio

from sqlalchemy.ext.asyncio import AsyncEngine

from workers.core.room import Policy
from workers.core.rules import Rules
from workers.store.writer import Batch, Recorded, as_rules, record_group

MAX_GROUP = 500


class GroupCommit:
    """Gathers the batches of concurrent jobs and records them together (see the module's doc).
    `await record(batch)` returns what `writer.record_events` would, once its group is committed."""

    def __init__(self, engine: AsyncEngine, rules: Rules | Policy, *, max_group: int = MAX_GROUP) -> None:
        self._engine, self._rules, self._max = engine, as_rules(rules), max_group
        self._waiting: list[tuple[Batch, asyncio.Future[Recorded]]] = []
        self._flusher: asyncio.Task[None] | None = None

    async def record(self, batch: Batch) -> Recorded:
        future: asyncio.Future[Recorded] = asyncio.get_running_loop().create_future()
        self._waiting.append((batch, future))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush())
        return await future

    async def _flush(self) -> None:
        while self._waiting:
            group: list[tuple[Batch, asyncio.Future[Recorded]]] = []
            rest: list[tuple[Batch, asyncio.Future[Recorded]]] = []
            rooms: set[str] = set()
            for batch, future in self._waiting:
                first = batch[0][0]
                room = first.room_sid or f"name:{first.room_name}"
                if future.done():  # its job gave up waiting (timed out): nobody wants the answer
                    continue
                if room in rooms or len(group) >= self._max:
                    rest.append((batch, future))
                    continue
                rooms.add(room)
                group.append((batch, future))
            self._waiting = rest
            if not group:
                continue
            try:
                results = await record_group(self._engine, [batch for batch, _ in group], rules=self._rules)
            except Exception as exc:  # every caller sees the failure (and its job retries)
                for _, future in group:
                    if not future.done():
                        future.set_exception(exc)
                continue
            for (_, future), result in zip(group, results, strict=True):
                if future.done():
                    continue
                if isinstance(result, Exception):
                    future.set_exception(result)
                else:
                    future.set_result(result)
